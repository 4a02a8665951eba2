"""Backpressure: a client that reads a ~200 MB result slowly must not make pgmux buffer it.
pgmux's RSS (from /proc/PID/status) stays within a few MB of its baseline, and other clients
keep being served meanwhile."""

import socket
import struct
import threading
import time

import pytest

from pgmux_helpers import SANITIZE

ROWS = 200000
WIDTH = 1000
QUERY = "SELECT repeat('x', %d) FROM generate_series(1, %d)" % (WIDTH, ROWS)
RSS_SLACK_KB = 8 * 1024 if not SANITIZE else 16 * 1024


class RssSampler(threading.Thread):
    def __init__(self, m, interval=0.05):
        super().__init__(daemon=True)
        self.m = m
        self.interval = interval
        self.max_kb = 0
        self.samples = 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            try:
                self.max_kb = max(self.max_kb, self.m.rss_kb())
                self.samples += 1
            except (FileNotFoundError, ProcessLookupError):
                return
            time.sleep(self.interval)

    def stop(self):
        self.stop_ev.set()
        self.join(5)


def _read_slowly(r, chunk=65536, delay=0.002, deadline_s=120):
    """Consume the result of the query sent on r at roughly chunk/delay bytes per second
    (about 20 MB/s: slower than PostgreSQL produces it). Parses the stream incrementally
    without keeping it. Returns (rows, bytes, rows with unexpected content)."""
    s = r.sock
    s.settimeout(30)
    buf = bytearray(r.buf)
    r.buf = b""
    rows = total = bad_rows = 0
    t_end = time.monotonic() + deadline_s
    expected_cell = b"x" * WIDTH
    while True:
        off = 0
        n = len(buf)
        while n - off >= 5:
            (ln,) = struct.unpack_from("!i", buf, off + 1)
            if n - off < 1 + ln:
                break
            t = buf[off]
            if t == 0x44:  # 'D'
                rows += 1
                if buf[off + 11:off + 1 + ln] != expected_cell:
                    bad_rows += 1
            elif t == 0x45:  # 'E'
                raise AssertionError("error during slow read: %r" % bytes(buf[off:off + 1 + ln]))
            elif t == 0x5A:  # 'Z'
                r.buf = bytes(buf[off + 1 + ln:])
                return rows, total, bad_rows
            off += 1 + ln
        del buf[:off]
        if time.monotonic() > t_end:
            raise AssertionError("slow read took too long (%d rows)" % rows)
        data = s.recv(chunk)
        if not data:
            raise AssertionError("connection closed after %d rows" % rows)
        total += len(data)
        buf += data
        time.sleep(delay)


def _slow_client(m):
    r = m.raw()
    # a small receive buffer so the kernel does not absorb the result for us
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    r.login()
    return r


@pytest.mark.slow
@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_slow_reader_bounded_rss(pgmux_factory, pool_mode):
    m = pgmux_factory(pool_mode=pool_mode, settings={"default_pool_size": 2})
    r = _slow_client(m)
    # warm up: one small query so the server connection and buffers exist
    assert r.query("SELECT 1") == [("1",)]
    time.sleep(0.3)
    baseline = m.rss_kb()
    sampler = RssSampler(m)
    sampler.start()

    # a bystander keeps querying while the slow reader drains
    lat = []
    stop = threading.Event()

    def bystander():
        c = m.connect(autocommit=True)
        cur = c.cursor()
        while not stop.is_set():
            t0 = time.monotonic()
            cur.execute("SELECT 1")
            cur.fetchone()
            lat.append(time.monotonic() - t0)
            time.sleep(0.05)
        c.close()

    bt = threading.Thread(target=bystander)
    bt.start()
    t0 = time.monotonic()
    r.send(r.msg(b"Q", QUERY.encode() + b"\0"))
    rows, nbytes, bad = _read_slowly(r)
    took = time.monotonic() - t0
    stop.set()
    bt.join(10)
    sampler.stop()
    growth = sampler.max_kb - baseline
    print("slow reader: %d rows, %.1f MB in %.1fs; pgmux RSS baseline %d kB, peak %d kB "
          "(+%d kB); bystander max latency %.3fs over %d queries"
          % (rows, nbytes / 1e6, took, baseline, sampler.max_kb, growth,
             max(lat) if lat else -1, len(lat)))
    assert rows == ROWS and bad == 0
    assert nbytes > ROWS * WIDTH
    assert sampler.samples > 20
    assert growth <= RSS_SLACK_KB, "pgmux RSS grew by %d kB while a client read slowly" % growth
    assert lat and max(lat) < 1.0, "bystander stalled (max %.2fs)" % max(lat)
    # the slow client's connection is still in a good state
    assert r.query("SELECT 'after'") == [("after",)]
    r.close()


@pytest.mark.slow
def test_slow_reader_disconnects_midway(pgmux_factory, pg):
    """A slow reader that gives up halfway: its server is not handed to another client in the
    middle of a result, and pgmux's memory is back near its baseline."""
    m = pgmux_factory(settings={"default_pool_size": 1})
    r = _slow_client(m)
    assert r.query("SELECT 1") == [("1",)]
    baseline = m.rss_kb()
    r.send(r.msg(b"Q", QUERY.encode() + b"\0"))
    got = 0
    while got < 20 * 1024 * 1024:
        got += len(r.sock.recv(65536))
    r.close()
    c = m.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT 'fresh', count(*) FROM generate_series(1, 10)")
    assert cur.fetchone() == ("fresh", 10)
    c.close()
    assert m.rss_kb() - baseline <= RSS_SLACK_KB
