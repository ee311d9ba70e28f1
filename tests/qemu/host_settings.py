"""host_settings.py - host settings a test changes for itself and puts back,
even when it fails, and the way a scenario says the host cannot run it.

    with overcommit(1):            # vm.overcommit_memory, restored on exit
        ...
    raise Skip("why")              # the scenario is skipped, not passed
"""
import contextlib
import os
import threading

from scenarios import Skip

OVERCOMMIT = "/proc/sys/vm/overcommit_memory"
_lock = threading.Lock()
_users = 0
_saved = None


@contextlib.contextmanager
def overcommit(mode):
    """Set vm.overcommit_memory for the duration (shared by parallel
    scenarios: the first in sets it, the last out restores the old value)."""
    global _users, _saved
    if os.geteuid() != 0:
        raise Skip("changing vm.overcommit_memory needs root")
    with _lock:
        if _users == 0:
            with open(OVERCOMMIT) as f:
                _saved = f.read().strip()
            try:
                with open(OVERCOMMIT, "w") as f:
                    f.write(str(mode))
            except OSError as e:
                raise Skip(f"cannot set vm.overcommit_memory: {e.strerror}") from None
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                with open(OVERCOMMIT, "w") as f:
                    f.write(_saved)
