"""qmp.py - a minimal QMP client (QEMU Machine Protocol), standard library
only: one JSON object per line over a unix socket, `qmp_capabilities` first.
Used by tools/balloonctl and the QEMU tests. Events that arrive while waiting
for a reply are kept in .events.
"""
import json
import socket
import time


class QMP:
    """Minimal QMP client: one JSON object per line over a unix socket."""

    MAX_EVENTS = 256

    def __init__(self, path, timeout=30, connect_timeout=None):
        deadline = time.monotonic() + (timeout if connect_timeout is None else connect_timeout)
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"QMP socket {path} did not appear")
                time.sleep(0.05)
        self.timeout = timeout
        self.sock.settimeout(timeout)
        self.buf = b""
        self.events = []
        self._read()                      # greeting
        self.execute("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd, args=None):
        """Run a command; returns "return", raises RuntimeError on "error"."""
        msg = {"execute": cmd}
        if args is not None:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "event" in r:
                self.keep_event(r)
            elif "error" in r:
                raise RuntimeError(f"QMP {cmd}: {r['error'].get('desc', r['error'])}")
            elif "return" in r:
                return r["return"]

    def wait_event(self, name, timeout):
        """Wait for an event called `name` (or take one already received)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["event"] == name:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no QMP event {name} within {timeout} s")
            self.sock.settimeout(left)
            try:
                r = self._read()
            except socket.timeout:
                continue
            finally:
                self.sock.settimeout(self.timeout)
            if "event" in r:
                self.keep_event(r)

    def keep_event(self, e):
        """Events arrive whether or not anyone waits for them: keep the
        newest MAX_EVENTS, so a long-running client does not grow without bound."""
        self.events.append(e)
        if len(self.events) > self.MAX_EVENTS:
            del self.events[:len(self.events) - self.MAX_EVENTS]

    def close(self):
        self.sock.close()
