"""A small fault-injecting TCP proxy for the test suite, placed between pgmux and PostgreSQL.

It forwards whole PostgreSQL protocol messages (it parses the framing: the untyped startup
packet, SSLRequest/GSSENCRequest and their one-byte answers, then type byte + length) and, per
connection and per direction, can stall, drop (close) or reset (RST, SO_LINGER 0) the
connection before a chosen message, after it, or in the middle of it (a cut: half the message
has been forwarded). Points are chosen by message type and occurrence, and restricted to the
connections a test cares about:

    proxy = FaultProxy(pg.port).start()
    # cut the 100th DataRow of the query that carries the marker, resetting both sides
    rule = proxy.add_rule(TO_CLIENT, b"D", at="mid", action="reset", nth=100, marker=b"victim")
    ...
    assert rule.fired.wait(10)

A rule with a marker applies to a connection once a message from pgmux that contains the
marker went through it (the marker message itself counts for TO_SERVER rules). A rule without
one applies only to connections accepted after it was added (login faults hit the next server
connection pgmux opens, not the pooled ones). Each rule fires once. Threads, no asyncio: two
pump threads per connection; stalls are sleeps in the pump of that direction only.
"""

import socket
import struct
import threading
import time

TO_SERVER = "to_server"  # pgmux -> PostgreSQL
TO_CLIENT = "to_client"  # PostgreSQL -> pgmux

STARTUP = "startup"  # pseudo message type: the untyped startup packet (protocol 3.0)

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102


class Rule:
    """One armed fault. fired is set when it triggers; conn_id says on which connection."""

    def __init__(self, direction, msg, at, action, nth, marker, seconds, phase, min_conn_id,
                 cut_at):
        assert direction in (TO_SERVER, TO_CLIENT)
        assert at in ("before", "mid", "after")
        assert action in ("drop", "reset", "stall")
        assert phase in (None, "login", "ready")
        self.direction = direction
        self.msg = msg
        self.at = at
        self.action = action
        self.nth = nth
        self.marker = marker
        self.seconds = seconds
        self.phase = phase
        self.min_conn_id = min_conn_id
        self.cut_at = cut_at
        self.seen = 0
        self.fired = threading.Event()
        self.conn_id = None
        self.fired_at = None

    def __repr__(self):
        return "Rule(%s %s %r %s #%d marker=%r%s)" % (
            self.action, self.at, self.msg, self.direction, self.nth, self.marker,
            " %ss" % self.seconds if self.action == "stall" else "")


class _Conn:
    def __init__(self, proxy, cid, client_sock, server_sock):
        self.proxy = proxy
        self.id = cid
        self.sock = {TO_SERVER: server_sock, TO_CLIENT: client_sock}  # where bytes go
        self.src = {TO_SERVER: client_sock, TO_CLIENT: server_sock}  # where bytes come from
        self.closed = threading.Event()
        self.tags = set()
        self.logged_in = False  # a ReadyForQuery went to pgmux
        self.opaque = False  # TLS negotiated: forward bytes as they are
        self.single_byte_replies = 0  # SSLRequest/GSSENCRequest answers pending
        self.startup_done = False
        self.lock = threading.Lock()
        self.bytes = {TO_SERVER: 0, TO_CLIENT: 0}
        self.msgs = {TO_SERVER: 0, TO_CLIENT: 0}

    # -- closing
    def close(self, reset=False):
        with self.lock:
            if self.closed.is_set():
                return
            self.closed.set()
        for s in self.sock.values():
            try:
                if reset:
                    # SO_LINGER 0: close() sends RST. SHUT_RD sends nothing but wakes the pump
                    # blocked in recv() on it (a close() alone would not, and the socket would
                    # live on, unreset, until that recv() returned).
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.shutdown(socket.SHUT_RD)
                else:
                    s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        self.proxy._forget(self)

    # -- forwarding
    def _send(self, direction, data):
        if not data:
            return True
        try:
            self.sock[direction].sendall(data)
        except OSError:
            self.close()
            return False
        self.bytes[direction] += len(data)
        return True

    def _next_message(self, direction, buf):
        """(kind, length) of the message at the start of buf, or None while incomplete."""
        if self.opaque:
            return ("raw", len(buf)) if buf else None
        if direction == TO_CLIENT and self.single_byte_replies:
            return ("single", 1) if buf else None
        if direction == TO_SERVER and not self.startup_done:
            if len(buf) < 8:
                return None
            (length, code) = struct.unpack("!ii", buf[:8])
            if length < 8 or length > 1 << 20:
                return ("raw", len(buf))  # not PostgreSQL: pass it on as it is
            if len(buf) < length:
                return None
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                return ("negotiate", length)
            if code == CANCEL_REQUEST:
                return ("cancel", length)
            return (STARTUP, length)
        if len(buf) < 5:
            return None
        (length,) = struct.unpack("!i", buf[1:5])
        if length < 4:
            return ("raw", len(buf))
        if len(buf) < 1 + length:
            return None
        return (buf[:1], 1 + length)

    def _rule_for(self, direction, kind, data):
        with self.proxy.lock:
            for r in self.proxy.rules:
                if r.fired.is_set() or r.direction != direction:
                    continue
                if r.msg is not None and r.msg != kind:
                    continue
                if r.marker is not None:
                    if r.marker not in self.tags:
                        continue
                elif self.id < r.min_conn_id:
                    continue
                if r.phase == "login" and self.logged_in:
                    continue
                if r.phase == "ready" and not self.logged_in:
                    continue
                r.seen += 1
                if r.seen < r.nth:
                    continue
                r.fired_at = time.monotonic()
                r.conn_id = self.id
                self.proxy.events.append((self.id, repr(r)))
                return r
        return None

    def _act(self, r):
        """Apply the rule's action; False when the connection is gone."""
        if r.action == "stall":
            r.fired.set()
            end = None if r.seconds is None else time.monotonic() + r.seconds
            while not self.closed.is_set() and not self.proxy.stopping.is_set():
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    break
                if self.proxy.release.wait(min(0.05, left) if left is not None else 0.05):
                    break
            return not self.closed.is_set()
        self.close(reset=(r.action == "reset"))
        r.fired.set()
        return False

    def _forward(self, direction, kind, data):
        if direction == TO_SERVER:
            for m in self.proxy.markers():
                if m in data:
                    self.tags.add(m)
            if kind == "negotiate":
                self.single_byte_replies += 1
            elif kind in (STARTUP, "cancel"):
                self.startup_done = True
        elif kind == "single":
            self.single_byte_replies -= 1
            if data == b"S":
                self.opaque = True
        r = self._rule_for(direction, kind, data) if kind not in ("raw", "single") else None
        if r is None:
            ok = self._send(direction, data)
        elif r.at == "before":
            ok = self._act(r) and self._send(direction, data)
        elif r.at == "after":
            ok = self._send(direction, data) and self._act(r)
        else:
            cut = r.cut_at if r.cut_at is not None else max(1, len(data) // 2)
            cut = min(max(1, cut), len(data) - 1) if len(data) > 1 else 0
            ok = self._send(direction, data[:cut]) and self._act(r) and \
                self._send(direction, data[cut:])
        if ok and direction == TO_CLIENT and kind == b"Z":
            self.logged_in = True
        self.msgs[direction] += 1
        return ok

    def pump(self, direction):
        src = self.src[direction]
        buf = b""
        try:
            while not self.closed.is_set():
                try:
                    chunk = src.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                buf += chunk
                while buf:
                    nm = self._next_message(direction, buf)
                    if nm is None:
                        break
                    kind, length = nm
                    data, buf = buf[:length], buf[length:]
                    if not self._forward(direction, kind, data):
                        return
        finally:
            self.close()


class FaultProxy:
    """Listen on 127.0.0.1:<free port>, forward every connection to target_host:target_port."""

    def __init__(self, target_port, target_host="127.0.0.1", listen_port=0):
        self.target = (target_host, target_port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", listen_port))
        self.lsock.listen(256)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.rules = []
        self.conns = {}
        self.next_id = 1
        self.accepted = 0
        self.events = []  # (conn id, rule) as rules fire
        self.stopping = threading.Event()
        self.release = threading.Event()  # ends every stall
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)
        self.thread.start()
        return self

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                csock, _ = self.lsock.accept()
            except OSError:
                return
            try:
                ssock = socket.create_connection(self.target, timeout=5)
                ssock.settimeout(None)
            except OSError:
                csock.close()
                continue
            for s in (csock, ssock):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                cid = self.next_id
                self.next_id += 1
                self.accepted += 1
                conn = _Conn(self, cid, csock, ssock)
                self.conns[cid] = conn
            for d in (TO_SERVER, TO_CLIENT):
                threading.Thread(target=conn.pump, args=(d,), name="faultproxy-%d-%s" % (cid, d),
                                 daemon=True).start()

    def _forget(self, conn):
        with self.lock:
            self.conns.pop(conn.id, None)

    def markers(self):
        with self.lock:
            return {r.marker for r in self.rules if r.marker is not None}

    # -- API
    def add_rule(self, direction, msg, at="before", action="drop", nth=1, marker=None,
                 seconds=None, phase=None, cut_at=None):
        """Arm a fault. msg: a type byte (b"D"), STARTUP, or None for any message.
        at: before / mid / after the message. action: drop / reset / stall (seconds=None:
        until the connection closes or release_stalls()). cut_at: bytes of the message that
        go through before a mid-message action (default half)."""
        if isinstance(marker, str):
            marker = marker.encode()
        with self.lock:
            r = Rule(direction, msg, at, action, nth, marker, seconds, phase, self.next_id,
                     cut_at)
            self.rules.append(r)
        return r

    def clear_rules(self):
        with self.lock:
            self.rules = []

    def release_stalls(self):
        self.release.set()

    def live(self):
        """Number of proxied connections still open."""
        with self.lock:
            return len(self.conns)

    def live_conns(self):
        with self.lock:
            return list(self.conns.values())

    def close(self):
        self.stopping.set()
        self.release.set()
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)  # wakes the accept() in the thread
        except OSError:
            pass
        try:
            self.lsock.close()
        except OSError:
            pass
        for c in self.live_conns():
            c.close()
        if self.thread:
            self.thread.join(5)
