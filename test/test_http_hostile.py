"""Hostile input on the stats/health HTTP listener (issue 6): oversized heads, slowloris,
pipelined garbage, unknown methods, bodies, clients that never read. Meanwhile queries through
the pooler keep working and the endpoints keep answering a well-behaved scraper."""

import re
import socket
import threading
import time

import pytest

from pgmux_helpers import wait_until
from test_metrics import http_get, obs_pgmux, scrape, val

pytestmark = pytest.mark.usefixtures("not_pgbouncer")


@pytest.fixture
def not_pgbouncer(is_pgbouncer):
    if is_pgbouncer:
        pytest.skip("pgmux extension")


class QueryLoad:
    """Queries through pgmux on a few connections in a thread, counting results."""

    def __init__(self, m, conns=4):
        self.m = m
        self.conns = [m.connect(autocommit=True) for _ in range(conns)]
        self.ok = 0
        self.errors = []
        self.max_latency = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        i = 0
        while not self.stop.is_set():
            c = self.conns[i % len(self.conns)]
            i += 1
            t = time.monotonic()
            try:
                cur = c.cursor()
                cur.execute("SELECT %s", (i,))
                assert cur.fetchone() == (i,)
                self.ok += 1
            except Exception as e:  # noqa: BLE001 - every failure is a finding
                self.errors.append(repr(e))
                return
            self.max_latency = max(self.max_latency, time.monotonic() - t)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        for c in self.conns:
            c.close()
        assert not self.errors, self.errors
        assert self.ok > 0
        assert self.max_latency < 2.0, "a query took %.2fs" % self.max_latency


def raw_conn(port, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_all(s, timeout=5):
    """Everything until the server closes (or timeout)."""
    s.settimeout(timeout)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out, True
            out += chunk
    except socket.timeout:
        return out, False
    except ConnectionResetError:
        return out, True


def statuses(data):
    """Status codes of the responses in data, in order."""
    return [int(x) for x in re.findall(rb"HTTP/1\.1 (\d{3}) [A-Za-z]", data)]


@pytest.fixture
def m(pgmux_factory):
    return obs_pgmux(pgmux_factory)


def test_oversized_head(m):
    with QueryLoad(m):
        s = raw_conn(m.stats_port)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        data, closed = read_all(s)
        assert statuses(data) == [431] and closed
        s.close()
        # many headers, each small, adding up past the limit
        s = raw_conn(m.stats_port)
        s.sendall(b"GET /health/live HTTP/1.1\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n")
        data, closed = read_all(s)
        assert statuses(data) == [431] and closed
        assert http_get(m.stats_port, "/health/live")[0] == 200


def test_slowloris(m):
    """More trickling connections than the listener holds: a scraper still gets through at
    once, and the trickling ones are closed by the header timeout."""
    with QueryLoad(m):
        socks = []
        for _ in range(100):
            s = raw_conn(m.stats_port)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHo")
            socks.append(s)
        t_end = time.monotonic() + 13
        alive_after_timeout = None
        while time.monotonic() < t_end:
            t = time.monotonic()
            assert http_get(m.stats_port, "/metrics", timeout=3)[0] == 200
            assert time.monotonic() - t < 1.0, "scrape blocked by slowloris connections"
            for s in socks:
                try:
                    s.send(b"s")
                except OSError:
                    pass
            time.sleep(1)
        # header timeout is 10 s from the first byte: everything must have been closed
        alive_after_timeout = 0
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(1) != b"":
                    alive_after_timeout += 1
            except BlockingIOError:
                alive_after_timeout += 1
            except OSError:
                pass
            s.close()
        assert alive_after_timeout == 0
    mt = scrape(m)
    assert val(mt, "pgmux_http_connections_closed_total", reason="evicted") >= 36
    assert val(mt, "pgmux_http_connections_closed_total", reason="timeout") >= 1


def test_pipelined_garbage(m):
    with QueryLoad(m):
        s = raw_conn(m.stats_port)
        s.sendall(b"GET /health/live HTTP/1.1\r\n\r\n"
                  b"GET /health/ready HTTP/1.1\r\n\r\n"
                  b"\x00\x01\x02garbage\xff\xfe\r\n\r\n"
                  b"GET /health/live HTTP/1.1\r\n\r\n")
        data, closed = read_all(s)
        assert statuses(data) == [200, 200, 400] and closed
        s.close()
        # binary junk only
        s = raw_conn(m.stats_port)
        s.sendall(bytes(range(256)) * 4 + b"\n\n")
        data, closed = read_all(s)
        assert statuses(data) == [400] and closed
        s.close()


def test_many_pipelined_requests(m):
    s = raw_conn(m.stats_port)
    s.sendall(b"GET /health/live HTTP/1.1\r\n\r\n" * 200
              + b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    data, closed = read_all(s, timeout=10)
    st = statuses(data)
    assert st == [200] * 200 + [404] and closed


def test_methods_versions_bodies(m):
    def one(req):
        s = raw_conn(m.stats_port)
        s.sendall(req)
        data, _ = read_all(s, timeout=3)
        s.close()
        return data

    for method in (b"POST", b"PUT", b"DELETE", b"BREW", b"OPTIONS", b"PATCH"):
        data = one(method + b" /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert statuses(data) == [405], method
        assert b"Allow: GET, HEAD" in data
    assert statuses(one(b"GE T /metrics HTTP/1.1\r\n\r\n")) == [400]
    assert statuses(one(b"GET /metrics HTTP/2.0\r\n\r\n")) == [505]
    assert statuses(one(b"GET /metrics SPDY\r\n\r\n")) == [400]
    assert statuses(one(b"GET\r\n\r\n")) == [400]
    assert statuses(one(b"GET /metrics HTTP/1.1\r\nNoColonHere\r\n\r\n")) == [400]
    assert statuses(one(b"GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n")) == [400]
    assert statuses(one(b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")) == [400]
    assert statuses(one(b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")) \
        == [400]
    assert statuses(one(b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n")) == [404]
    # HTTP/1.0 without keep-alive: answered, then closed
    data = one(b"GET /health/live HTTP/1.0\r\n\r\n")
    assert statuses(data) == [200] and b"Connection: close" in data
    # bare LF line ends are accepted
    assert statuses(one(b"GET /health/live HTTP/1.1\nConnection: close\n\n")) == [200]
    assert m.psql("SELECT 1") == "1"


def test_client_that_never_reads(m):
    """Pipelined /metrics requests from a client that reads nothing: pgmux stops reading
    from it once its socket is full, and the pooler is not slowed."""
    with QueryLoad(m):
        s = raw_conn(m.stats_port)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        req = b"GET /metrics HTTP/1.1\r\n\r\n"
        s.setblocking(False)
        sent = 0
        try:
            for _ in range(5000):
                sent += s.send(req)
        except BlockingIOError:
            pass
        time.sleep(2)
        assert http_get(m.stats_port, "/health/live")[0] == 200
        s.close()
    wait_until(lambda: val(scrape(m), "pgmux_http_connections") <= 1, 10,
               msg="the stuck connection is gone")


def test_keep_alive_reuse(m):
    """One connection, many requests (what Prometheus does)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", m.stats_port, timeout=5)
    for _ in range(50):
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        assert r.status == 200
        r.read()
    conn.close()
