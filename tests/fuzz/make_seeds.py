#!/usr/bin/env python3
"""make_seeds.py - write the seed corpus of each fuzz target
(tests/fuzz/corpus/<target>/seed-*), a handful of small inputs that reach the
interesting paths at once: a round trip, a hostile device, a reset.

The byte layouts follow the input parsers at the top of each target
(tests/fuzz/fuzz_*.c); rerun this after changing one of them:
    python3 tests/fuzz/make_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
PPB = 512


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(bytes(data))


# ---------------------------------------------------------------- fuzz_virtq
# size byte (queue = 1 << (b % 9)), then ops: 0/1 add (n_out, n_in, then
# (addr, len) per buffer), 2 kick, 3/4 get (count), 5 device completes a real
# chain (len), 6 any used entry (kind, id.., kind, len..), 7 used idx += int8,
# 8 scribble (hi, lo, value), 9 reset (byte % 4 == 0 detaches everything).
def add(n_out, n_in):
    return [0, n_out, n_in] + [1, 16] * (n_out + n_in)


round_trip = [3]
for _ in range(6):
    round_trip += add(1, 1) + [2, 5, 8, 3, 0]
write("fuzz_virtq", "round-trip", round_trip)
write("fuzz_virtq", "idx-jump", [3] + add(1, 0) + add(2, 1) + [2, 5, 0, 7, 5, 3, 3])
write("fuzz_virtq", "id-twice", [2] + add(1, 0) + [2, 5, 0, 3, 0, 6, 1, 0, 1, 0, 3, 0] + add(1, 0))
write("fuzz_virtq", "reset", [4] + add(2, 0) + add(1, 2) + [2, 5, 4, 9, 0] + add(1, 0) + [2, 5, 0, 3, 0])
write("fuzz_virtq", "scribble", [3] + add(1, 1) + [2, 8, 0, 16, 0xff, 8, 0, 20, 0xff, 5, 0, 3, 0])

# ---------------------------------------------------------------- fuzz_balloon_device
# header: min_free, seed, flags f (1: 8 feature bytes, 2: VERSION_1, 4: numq,
# 8: 4 queue size picks, 16: 4 notify offsets, 0x20 without 0x40: deflate-on-oom
# and free-page-reporting), app prealloc (x32 frames);
# then ops (op, queue, args): 0/1 target (kind, ..), 2-4 ticks (n), 5 mode,
# 6 complete (n), 7 raw used (kind, ..), 8 used idx += int8, 9 register
# override (slot, kind, reg, value x4, count), 10 generation, 11 state
# (<100 needs reset, <180 self reset, <230 flip, <245 stuck, else gone),
# 12 app (dir, n), 13 long wait (s), 14 host flags, 15 host runs.
def hdr(f=2, app=64, extra=()):
    return [2, 7, f] + list(extra) + [app]


def target_blocks(n):
    return [0, 0, 1, n]


def ticks(n):
    return [2, 0, n]


def mode(q, m):
    return [5, q, m]


write("fuzz_balloon_device", "round-trip",
      hdr() + target_blocks(6) + ticks(31) + ticks(31) + target_blocks(1) + ticks(31) +
      target_blocks(0) + ticks(31))
write("fuzz_balloon_device", "hold-and-complete",
      hdr() + mode(0, 1) + target_blocks(8) + ticks(5) + [6, 0, 3] + ticks(5) +
      [7, 0, 5, 0, 2] + ticks(5) + mode(0, 0) + [6, 0, 7] + ticks(20))
write("fuzz_balloon_device", "needs-reset",
      hdr() + target_blocks(5) + ticks(31) + [11, 0, 10] + ticks(31) + ticks(31))
write("fuzz_balloon_device", "self-reset-and-stuck",
      hdr() + target_blocks(4) + ticks(31) + [11, 0, 240] + [11, 0, 150] + ticks(31))
write("fuzz_balloon_device", "generation",
      hdr() + target_blocks(3) + ticks(20) + [10, 0, 0x80] + target_blocks(9) +
      [13, 0, 3] + [13, 0, 3] + ticks(10))
write("fuzz_balloon_device", "features-and-queues",
      hdr(f=2 | 4 | 8 | 16, extra=[4, 9, 2, 5, 0, 0, 1, 2, 3]) + target_blocks(7) + ticks(31))
write("fuzz_balloon_device", "register-override",
      hdr() + [9, 0, 0, 0, 3] + list(struct.pack(">I", 0x40)) + [2] + target_blocks(2) + ticks(31) +
      [9, 0, 1, 1, 0] + list(struct.pack(">I", 0xffffffff)) + [5] + ticks(31))
write("fuzz_balloon_device", "reporting-and-oom",
      hdr(f=0x22) + ticks(20) + target_blocks(12) + ticks(31) + [12, 0, 1, 255] + ticks(10) +
      [5, 1, 2] + [12, 0, 1, 200] + [13, 0, 1] + ticks(10))
write("fuzz_balloon_device", "raw-idx",
      hdr() + mode(1, 1) + target_blocks(4) + ticks(31) + target_blocks(0) + ticks(3) +
      [8, 1, 0xff] + ticks(10))

# ---------------------------------------------------------------- fuzz_cmdline
for name, text in [
    ("all-types", b"selftest feature=off count=0x20 balloon.max=512M name=abc app.pattern=grow:64M,loop"),
    ("errors", b"bogus feature=maybe count=0 count=101 count=0x balloon.max=1.5G name=muchtoolong selftest=1"),
    ("sizes", b"balloon.max=1T balloon.max=17179869184G balloon.min_free=4KiB balloon.min_free=3MB "
              b"balloon.max=99999999999999999999"),
    ("spacing", b"\t count=5\r\n name= \n=\n ==  feature"),
    ("long-word", b"name=" + b"x" * 300 + b" count=3"),
]:
    write("fuzz_cmdline", name, text)

# ---------------------------------------------------------------- fuzz_pci_caps
# 256 bytes of config space (vendor, device, header type forced to a modern
# balloon), six le32 answers to BAR sizing (read big-endian from the input),
# then an MADT.
def cfg_with_caps(caps, cap_ptr):
    c = bytearray(256)
    struct.pack_into("<H", c, 0x06, 0x10)                  # status: capability list
    struct.pack_into("<I", c, 0x20, 0xe0000000 | 0x4)      # BAR4: 64-bit memory
    c[0x34] = cap_ptr
    for at, data in caps:
        c[at:at + len(data)] = data
    return c


def vcap(nxt, kind, bar, off, length, mult=None):
    d = bytearray([0x09, nxt, 20 if mult is not None else 16, kind, bar, 0, 0, 0])
    d += struct.pack("<II", off, length)
    if mult is not None:
        d += struct.pack("<I", mult)
    return d


SIZING = [0] * 4 + [0xffffc00c, 0xffffffff]                # BAR4: 16 KiB


def madt(entries):
    body = struct.pack("<II", 0xfee00000, 1) + b"".join(entries)
    t = bytearray(b"APIC" + struct.pack("<I", 36 + len(body)) + bytes(28) + body)
    return t


IOAPIC = bytes([1, 12, 0, 0]) + struct.pack("<II", 0xfec00000, 0)
OVERRIDE = bytes([2, 10, 0, 10]) + struct.pack("<IH", 10, 0xd)


def pci_seed(name, caps, cap_ptr, table=b""):
    sizing = b"".join(struct.pack(">I", s) for s in SIZING)
    write("fuzz_pci_caps", name, bytes(cfg_with_caps(caps, cap_ptr)) + sizing + bytes(table))


GOOD = [(0x40, vcap(0x50, 1, 4, 0x0000, 0x1000)), (0x50, vcap(0x60, 3, 4, 0x1000, 0x1000)),
        (0x60, vcap(0x70, 4, 4, 0x2000, 0x1000)), (0x70, vcap(0, 2, 4, 0x3000, 0x1000, 4))]
pci_seed("balloon", GOOD, 0x40, madt([IOAPIC, OVERRIDE]))
# regressions: a vendor capability pointing at itself (the walk looped
# forever), and one at the very end of config space (its fields were read
# past byte 255)
pci_seed("cyclic", [(0x40, vcap(0x40, 1, 4, 0, 0x1000))], 0x40, madt([IOAPIC]))
pci_seed("at-the-end", [(0x40, vcap(0xfc, 1, 4, 0, 0x1000)), (0xfc, bytes([0x09, 0, 16, 4]))], 0x40,
         madt([bytes([2, 200])]))
