"""config.py - balloond's configuration file (INI), parsed into plain values.

Contract
  Trusts: nothing in the text. parse(text, path) returns a Config or raises
  ConfigError with one line naming the file, the section, the key and what
  was expected; it never half-accepts a file. No I/O besides load(path).
  Owns: the defaults (every key is optional except that some guest source -
  a [guest NAME] section or `discover` - must exist).

    [daemon]
    interval = 1          ; seconds between ticks
    discover = /run/balloon-qmp   ; every QMP socket in this directory is a guest (file name = guest name)
    cgroup = /sys/fs/cgroup/memory/vms   ; the guests' memory cgroup (v1 or v2), optional
    hugetlb = off         ; on: count the hugetlbfs pool (free minus reserved)
    psi = 10              ; PSI some avg10 (%) that counts as pressure; 0 ignores PSI
    low = 256M            ; host headroom under which pressure starts
    high = 512M           ; ... and at which it ends
    step = 64M            ; most one guest moves per tick
    guest_low = 64M       ; a guest with less available memory is short
    guest_keep = 128M     ; a donor keeps at least this much available
    balance_gap = 128M    ; idle difference (per 1000 shares) that moves memory without pressure
    stats_interval = 1    ; guest-stats polling interval the daemon sets (seconds)
    state = /run/balloond.json   ; where `run` writes what `status` shows
    libvirt_uri = qemu:///system

    [defaults]            ; for every guest, also discovered ones
    min = 256M
    max = 0               ; 0 = the guest's RAM
    shares = 1000

    [guest web]
    qmp = /run/qemu/web.qmp     ; or: libvirt = DOMAIN
    min = 512M
    max = 2G
    shares = 2000
"""
import configparser
import re
from dataclasses import dataclass, field

from .policy import GuestSettings, Settings

MIB = 1 << 20


class ConfigError(Exception):
    pass


@dataclass
class GuestConfig:
    name: str
    qmp: str = None
    libvirt: str = None
    settings: GuestSettings = field(default_factory=GuestSettings)


@dataclass
class Config:
    path: str = None
    interval: float = 1.0
    discover: str = None
    cgroup: str = None
    hugetlb: bool = False
    stats_interval: int = 1
    state: str = "/run/balloond.json"
    libvirt_uri: str = "qemu:///system"
    policy: Settings = field(default_factory=Settings)
    defaults: GuestSettings = field(default_factory=lambda: GuestSettings(min=256 * MIB))
    guests: dict = field(default_factory=dict)    # name -> GuestConfig

    def settings_for(self, name):
        g = self.guests.get(name)
        return g.settings if g else self.defaults


def parse_size(text):
    m = re.fullmatch(r"(\d+)([KMGT]?)(i?B)?", text.strip(), re.I)
    if not m:
        raise ValueError(f"bad size '{text}': expected a number with an optional K/M/G/T suffix, like 512M")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2).upper()]


def _number(text, kind, lo, hi):
    try:
        v = kind(text.strip().rstrip("s") if kind is float else text.strip())
    except ValueError:
        raise ValueError(f"bad number '{text}'") from None
    if not lo <= v <= hi:
        raise ValueError(f"{text} is out of range [{lo}, {hi}]")
    return v


def _bool(text):
    t = text.strip().lower()
    if t in ("1", "yes", "on", "true"):
        return True
    if t in ("0", "no", "off", "false"):
        return False
    raise ValueError(f"bad switch '{text}': expected on or off")


DAEMON_KEYS = {
    "interval": lambda c, v: setattr(c, "interval", _number(v, float, 0.1, 3600)),
    "discover": lambda c, v: setattr(c, "discover", v.strip() or None),
    "cgroup": lambda c, v: setattr(c, "cgroup", v.strip() or None),
    "hugetlb": lambda c, v: setattr(c, "hugetlb", _bool(v)),
    "stats_interval": lambda c, v: setattr(c, "stats_interval", _number(v, int, 1, 3600)),
    "state": lambda c, v: setattr(c, "state", v.strip() or None),
    "libvirt_uri": lambda c, v: setattr(c, "libvirt_uri", v.strip()),
    "psi": lambda c, v: setattr(c.policy, "psi_on", _number(v, float, 0, 100)),
    "low": lambda c, v: setattr(c.policy, "low", parse_size(v)),
    "high": lambda c, v: setattr(c.policy, "high", parse_size(v)),
    "step": lambda c, v: setattr(c.policy, "step", parse_size(v)),
    "guest_low": lambda c, v: setattr(c.policy, "guest_low", parse_size(v)),
    "guest_keep": lambda c, v: setattr(c.policy, "guest_keep", parse_size(v)),
    "balance_gap": lambda c, v: setattr(c.policy, "balance_gap", parse_size(v)),
    "stuck_ticks": lambda c, v: setattr(c.policy, "stuck_ticks", _number(v, int, 1, 1000)),
    "cooldown": lambda c, v: setattr(c.policy, "cooldown", _number(v, float, 0, 86400)),
}
GUEST_KEYS = {
    "min": lambda g, v: setattr(g, "min", parse_size(v)),
    "max": lambda g, v: setattr(g, "max", parse_size(v)),
    "shares": lambda g, v: setattr(g, "shares", _number(v, int, 1, 1000000)),
}


def parse(text, path="<config>"):
    cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    try:
        cp.read_string(text, source=path)
    except configparser.Error as e:
        raise ConfigError(f"{path}: {str(e).splitlines()[0]}") from None
    c = Config(path=path)

    def apply(section, keys, target):
        for key, value in cp.items(section):
            if key not in keys:
                raise ConfigError(f"{path}: [{section}] unknown key '{key}' (known: {', '.join(sorted(keys))})")
            try:
                keys[key](target, value)
            except ValueError as e:
                raise ConfigError(f"{path}: [{section}] {key}: {e}") from None

    for section in cp.sections():
        if section == "daemon":
            apply(section, DAEMON_KEYS, c)
        elif section == "defaults":
            apply(section, GUEST_KEYS, c.defaults)
        elif not section.startswith("guest ") and section not in ("daemon", "defaults"):
            raise ConfigError(f"{path}: unknown section [{section}] (expected [daemon], [defaults], [guest NAME])")
    for section in cp.sections():
        if not section.startswith("guest "):
            continue
        name = section[6:].strip()
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ConfigError(f"{path}: [{section}]: a guest name is letters, digits, '_', '.', '-'")
        g = GuestConfig(name=name, settings=GuestSettings(c.defaults.min, c.defaults.max, c.defaults.shares))
        keys = dict(GUEST_KEYS)
        keys["qmp"] = lambda gs, v, g=g: setattr(g, "qmp", v.strip())
        keys["libvirt"] = lambda gs, v, g=g: setattr(g, "libvirt", v.strip())
        apply(section, keys, g.settings)
        if bool(g.qmp) == bool(g.libvirt) and not c.discover:
            raise ConfigError(f"{path}: [{section}] needs exactly one of qmp = SOCKET or libvirt = DOMAIN")
        if g.qmp and g.libvirt:
            raise ConfigError(f"{path}: [{section}] has both qmp and libvirt; pick one")
        c.guests[name] = g
    p = c.policy
    if p.low >= p.high:
        raise ConfigError(f"{path}: [daemon] low ({p.low >> 20} MiB) must be below high ({p.high >> 20} MiB)")
    if p.step < 2 * MIB:
        raise ConfigError(f"{path}: [daemon] step must be at least 2M (the guest balloons in 2 MiB blocks)")
    for g in [c.defaults] + [x.settings for x in c.guests.values()]:
        if g.max and g.min > g.max:
            raise ConfigError(f"{path}: a guest's min ({g.min >> 20} MiB) is above its max ({g.max >> 20} MiB)")
    if not c.guests and not c.discover:
        raise ConfigError(f"{path}: no guests: add a [guest NAME] section or `discover = DIR` under [daemon]")
    return c


def load(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read the configuration {path}: {e.strerror}") from None
    return parse(text, path)
