"""scn_idle.py - idle means idle: the guest sleeps until an interrupt, the
balloon is driven by its INTx line (QEMU 7.2's virtio-balloon-pci has no
MSI-X), the console by IRQ 4, and the fallbacks (no interrupt lines, no
timer) poll instead of hanging.

Counts, not times: the guest's own wake-up counter (`uptime`) over an idle
window, and the balloon's interrupt counters (`balloon`). Host CPU figures
are in `make bench` (b_idle)."""
import re
import time

from balloon_host import boot_to_prompt, console, set_target
from scenarios import check, scenario

RAM = 512
IDLE_S = 4


def uptime(vm):
    m = console(vm, "uptime", r"up \d+\.\d+ s, (\d+) timer ticks, (\d+) wake-ups")
    return int(m.group(1)), int(m.group(2))


def interrupts(vm):
    m = console(vm, "balloon", r"^interrupts: (.*)")
    text = m.group(1)
    nums = dict((k, int(v)) for v, k in re.findall(r"(\d+) (configuration changes|queue interrupts)", text))
    return text, nums.get("configuration changes", 0), nums.get("queue interrupts", 0)


@scenario("idle_intx")
def idle_intx(ctx):
    """Idle: at most a couple of wake-ups (the console's own) in IDLE_S s,
    no timer ticks. A host target arrives as a configuration interrupt on the
    INTx line, the inflate's acks as queue interrupts; afterwards the guest
    is idle again. The console answers throughout (it runs on IRQ 4)."""
    vm = ctx.vm(mem_mb=RAM)
    boot_to_prompt(vm)
    time.sleep(1)
    text, cfg0, q0 = interrupts(vm)
    check(text.startswith("INTx line"), f"balloon interrupts: {text!r}, expected the INTx path")
    ticks0, wake0 = uptime(vm)
    time.sleep(IDLE_S)
    ticks1, wake1 = uptime(vm)
    check(wake1 - wake0 <= 3 and ticks1 == ticks0,
          f"idle for {IDLE_S} s: {wake1 - wake0} wake-ups, {ticks1 - ticks0} timer ticks (1 kHz polling "
          f"would be {IDLE_S * 1000})")
    got, _ = set_target(vm, RAM - 64)
    check(abs(got - (RAM - 64)) < 2, f"inflate stopped at {got:.0f} MiB")
    text, cfg1, q1 = interrupts(vm)
    check(cfg1 >= cfg0 + 1, f"no configuration interrupt counted for the new target ({text})")
    check(q1 > q0, f"no queue interrupt counted for the inflate's acks ({text})")
    ticks2, wake2 = uptime(vm)
    time.sleep(IDLE_S)
    ticks3, wake3 = uptime(vm)
    check(wake3 - wake2 <= 3, f"after the inflate: {wake3 - wake2} wake-ups in {IDLE_S} s")
    console(vm, "balloon check", r"balloon: books consistent")
    ctx.note(f"idle {IDLE_S} s: {wake1 - wake0} wake-ups, {ticks1 - ticks0} timer ticks; "
             f"inflate 64 MiB: {cfg1 - cfg0} config + {q1 - q0} queue interrupts; "
             f"then {wake3 - wake2} wake-ups in {IDLE_S} s")


@scenario("idle_fallbacks")
def idle_fallbacks(ctx):
    """No interrupt lines and no timer (irq.poll timer.off): the balloon says
    it polls, and still meets a target; the console still answers; nothing
    hangs. Each fallback says so in one line."""
    vm = ctx.vm(mem_mb=RAM, cmdline="irq.poll timer.off")
    boot_to_prompt(vm)
    vm.wait_for(r"lapic: timer.off", 5)
    vm.wait_for(r"virtio-balloon: no interrupts \(.*\); polling every millisecond", 5)
    text, _, _ = interrupts(vm)
    check(text.startswith("none"), f"balloon interrupts: {text!r}, expected polling")
    got, _ = set_target(vm, RAM - 64)
    check(abs(got - (RAM - 64)) < 2, f"inflate stopped at {got:.0f} MiB while polling")
    got, _ = set_target(vm, RAM)
    check(abs(got - RAM) < 2, f"deflate stopped at {got:.0f} MiB while polling")
    ticks, _ = uptime(vm)
    check(ticks == 0, f"{ticks} timer ticks with timer.off")
