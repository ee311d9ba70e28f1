"""fake_qmp.py - a QEMU stand-in for balloond's host tests: a unix socket that
speaks enough QMP (greeting, qmp_capabilities, query-memory-size-summary,
query-balloon, balloon, qom-get/qom-set of the balloon's stats properties) and
a balloon that reaches its target at once, with a BALLOON_CHANGE event."""
import json
import os
import socket
import threading
import time

M = 1 << 20


class FakeQemu:
    def __init__(self, path, ram_mib=512, actual_mib=512, avail_mib=400, interval=0):
        self.path, self.ram, self.actual = path, ram_mib * M, actual_mib * M
        self.avail, self.interval = avail_mib * M, interval
        self.refuse = False          # answer `balloon` with an error
        self.stuck = False           # accept `balloon` but never move
        self.commands = []
        self.lock = threading.Lock()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.closed:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _send(self, conn, obj):
        conn.sendall(json.dumps(obj).encode() + b"\n")

    def _client(self, conn):
        try:
            self._send(conn, {"QMP": {"version": {}, "capabilities": []}})
            buf = b""
            while not self.closed:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self._answer(conn, json.loads(line))
        except OSError:
            pass
        finally:
            conn.close()

    def _answer(self, conn, msg):
        cmd, args = msg.get("execute"), msg.get("arguments", {})
        with self.lock:
            self.commands.append((cmd, args))
            if cmd == "qmp_capabilities":
                r = {}
            elif cmd == "query-memory-size-summary":
                r = {"base-memory": self.ram}
            elif cmd == "query-balloon":
                r = {"actual": self.actual}
            elif cmd == "balloon":
                if self.refuse:
                    return self._send(conn, {"error": {"class": "GenericError", "desc": "no balloon today"}})
                if not self.stuck:
                    self.avail += args["value"] - self.actual
                    self.actual = args["value"]
                    self._send(conn, {"event": "BALLOON_CHANGE", "data": {"actual": self.actual},
                                      "timestamp": {"seconds": 0, "microseconds": 0}})
                r = {}
            elif cmd == "qom-get" and args.get("property") == "guest-stats-polling-interval":
                r = self.interval
            elif cmd == "qom-set" and args.get("property") == "guest-stats-polling-interval":
                self.interval = args["value"]
                r = {}
            elif cmd == "qom-get" and args.get("property") == "guest-stats":
                # dated a little ahead: the daemon sees statistics newer than its last change
                r = {"stats": {"stat-available-memory": self.avail, "stat-free-memory": self.avail,
                               "stat-total-memory": self.ram}, "last-update": int(time.time()) + 3}
            else:
                return self._send(conn, {"error": {"class": "CommandNotFound", "desc": f"{cmd}?"}})
        self._send(conn, {"return": r})

    def last(self, cmd):
        with self.lock:
            return [a for c, a in self.commands if c == cmd]

    def close(self):
        self.closed = True
        self.srv.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


class NotQmp:
    """A unix socket that answers with something that is not QMP."""

    def __init__(self, path):
        self.path = path
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            try:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            except OSError:
                pass
            conn.close()

    def close(self):
        self.srv.close()
        os.unlink(self.path)
