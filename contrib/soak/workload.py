#!/usr/bin/python3
"""Soak workload for contrib/soak/run.sh: the clients that are not pgbench, all on raw
sockets with timeouts (test/pgmux_helpers.py's RawClient), so that a client pgmux leaves
hanging is counted as stuck instead of hanging the soak.

    workload.py PORT DURATION_S SUMMARY_JSON [IDLE_CLIENTS]

Threads: idle clients (logged in, silent until the end, then each runs a query), long
transactions, COPY in and out, cancels, garbage connections, slow readers. Every operation
ends as ok, error (an ErrorResponse: expected while PostgreSQL restarts), closed (the
connection ended without one) or stuck (no answer within its deadline: a failure).
"""

import json
import os
import random
import socket
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "test"))

from pgmux_helpers import PgError, RawClient  # noqa: E402

USER, PASSWORD, DB = "soak", "soakpass", "soak"
OP_TIMEOUT = 90.0  # > query_wait_timeout (30 s) + a PostgreSQL restart

lock = threading.Lock()
stats = {}
stuck_detail = []


def count(kind, how, detail=None):
    with lock:
        d = stats.setdefault(kind, {"ok": 0, "error": 0, "closed": 0, "stuck": 0})
        d[how] += 1
        if how == "stuck":
            stuck_detail.append("%s: %s" % (kind, detail))


def connect(port, timeout=OP_TIMEOUT):
    c = RawClient(port, timeout=timeout)
    c.login(user=USER, password=PASSWORD, database=DB)
    return c


def op(kind, fn):
    """Run fn() as one operation and classify how it ended."""
    try:
        fn()
        count(kind, "ok")
    except PgError:
        count(kind, "error")
    except socket.timeout as e:
        count(kind, "stuck", repr(e))
    except TimeoutError as e:
        count(kind, "stuck", repr(e))
    except (OSError, EOFError, ValueError, struct.error) as e:
        count(kind, "closed", repr(e))
    except Exception as e:  # noqa: BLE001 - a protocol surprise is a finding too
        count(kind, "closed", repr(e))


class Worker(threading.Thread):
    def __init__(self, port, deadline, fn, name):
        super().__init__(daemon=True, name=name)
        self.port, self.deadline, self.fn = port, deadline, fn

    def run(self):
        rng = random.Random(hash(self.name))
        while time.monotonic() < self.deadline:
            self.fn(self.port, rng)


def long_txn(port, rng):
    def go():
        c = connect(port)
        try:
            k = rng.randint(1, 100)
            c.query("BEGIN")
            c.query("UPDATE soak_long SET v = v + 1 WHERE id = %d" % k)
            c.query("SELECT pg_sleep(%.1f)" % rng.uniform(3, 15))
            c.query("UPDATE soak_long SET v = v - 1 WHERE id = %d" % k)
            c.query("COMMIT")
        finally:
            c.close()
    op("long_txn", go)


def copy_in(port, rng):
    def go():
        c = connect(port)
        try:
            batch = rng.randint(1, 1 << 30)
            c.send(c.msg(b"Q", b"COPY soak_copy (batch, n, s) FROM STDIN\0"))
            t, body = c.read_msg()
            if t == b"E":
                c.read_results()
                return
            assert t == b"G", t
            rows = 2000
            data = b"".join(c.msg(b"d", b"%d\t%d\tline %d of the soak copy\n" % (batch, i, i))
                            for i in range(rows))
            c.send(data + c.msg(b"c"))
            c.read_results()
            n = c.query("SELECT count(*) FROM soak_copy WHERE batch = %d" % batch)[0][0]
            assert int(n) == rows, "COPY of %d rows left %s" % (rows, n)
            c.query("DELETE FROM soak_copy WHERE batch = %d" % batch)
        finally:
            c.close()
    op("copy_in", go)


def copy_out(port, rng):
    def go():
        c = connect(port)
        try:
            n = rng.randint(1000, 20000)
            c.send(c.msg(b"Q", b"COPY (SELECT g, md5(g::text) FROM generate_series(1, %d) g) "
                         b"TO STDOUT\0" % n))
            got = 0
            while True:
                t, body = c.read_msg()
                if t == b"d":
                    got += 1
                elif t == b"E":
                    c.read_results()
                    raise PgError({"M": "copy out"})
                elif t == b"Z":
                    break
            assert got == n, "COPY TO STDOUT gave %d of %d rows" % (got, n)
        finally:
            c.close()
    op("copy_out", go)
    time.sleep(rng.uniform(0, 1))


def cancel(port, rng):
    def go():
        c = connect(port)
        try:
            c.send(c.msg(b"Q", b"SELECT pg_sleep(30)\0"))
            time.sleep(rng.uniform(0.2, 1.5))
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(struct.pack("!ii", 16, 80877102) + c.backend_key)
            s.settimeout(10)
            try:
                s.recv(1)  # pgmux closes it once passed on
            finally:
                s.close()
            try:
                c.read_results(timeout=OP_TIMEOUT)
                raise AssertionError("pg_sleep(30) was not cancelled")
            except PgError as e:
                if e.sqlstate != "57014":
                    raise
            assert c.query("SELECT 1") == [("1",)]
        finally:
            c.close()
    op("cancel", go)
    time.sleep(rng.uniform(0, 2))


def garbage(port, rng):
    kind = rng.randint(0, 6)

    def go():
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            if kind == 0:
                s.sendall(os.urandom(rng.randint(1, 300)))
            elif kind == 1:  # truncated startup packet
                s.sendall(struct.pack("!ii", 60, 196608) + b"user\0soak\0")
            elif kind == 2:  # absurd length
                s.sendall(struct.pack("!ii", 0x7FFFFFF0, 196608))
            elif kind == 3:  # SSLRequest then plain bytes
                s.sendall(struct.pack("!ii", 8, 80877103))
                s.recv(1)
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            elif kind == 4:  # say nothing: client_login_timeout
                pass
            elif kind == 5:  # a good startup, then garbage instead of the password
                s.sendall(RawClient.startup_packet({"user": USER, "database": DB}))
                time.sleep(0.05)
                s.sendall(b"p\x00\x00\x00\x02zz" + os.urandom(50))
            else:  # negative length
                s.sendall(b"\xff\xff\xff\xf0" + os.urandom(20))
            s.settimeout(40)  # client_login_timeout is 15 s
            while s.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            s.close()
    op("garbage", go)
    time.sleep(rng.uniform(0, 0.5))


def slow_reader(port, rng):
    def go():
        c = connect(port)
        try:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
            c.send(c.msg(b"Q", b"SELECT g, repeat('z', 400) FROM generate_series(1, 10000) g\0"))
            rows = 0
            deadline = time.monotonic() + OP_TIMEOUT
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError("slow reader: no end of result")
                time.sleep(0.01)  # ~4 MB at ~16 KB per 10 ms: several seconds
                c.sock.settimeout(OP_TIMEOUT)
                chunk = c.sock.recv(16384)
                if not chunk:
                    raise ConnectionResetError("closed")
                c.buf += chunk
                while len(c.buf) >= 5:
                    (ln,) = struct.unpack("!i", c.buf[1:5])
                    if len(c.buf) < 1 + ln:
                        break
                    t = c.buf[:1]
                    c.buf = c.buf[1 + ln:]
                    if t == b"D":
                        rows += 1
                    elif t == b"E":
                        c.read_results()
                        raise PgError({"M": "slow reader"})
                    elif t == b"Z":
                        assert rows == 10000, rows
                        return
        finally:
            c.close()
    op("slow_reader", go)


def main():
    port, duration, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    n_idle = int(sys.argv[4]) if len(sys.argv) > 4 else 5000
    t0 = time.monotonic()
    deadline = t0 + duration

    # idle clients first (they are part of the warm-up), a few hundred per second
    idle = []
    idle_failed = 0
    for i in range(n_idle):
        try:
            idle.append(connect(port, timeout=60))
        except Exception as e:  # noqa: BLE001
            idle_failed += 1
            if idle_failed < 5:
                print("idle client %d: %r" % (i, e), file=sys.stderr)
    print("workload: %d idle clients logged in (%d failed) in %.0f s"
          % (len(idle), idle_failed, time.monotonic() - t0), file=sys.stderr, flush=True)

    workers = []
    plan = [(long_txn, 4), (copy_in, 2), (copy_out, 2), (cancel, 2), (garbage, 3),
            (slow_reader, 2)]
    for fn, n in plan:
        for i in range(n):
            w = Worker(port, deadline, fn, "%s-%d" % (fn.__name__, i))
            w.start()
            workers.append(w)
    for w in workers:
        w.join(max(0, deadline - time.monotonic()) + OP_TIMEOUT * 2)
    hung_threads = [w.name for w in workers if w.is_alive()]

    # every idle client must still answer
    idle_res = {"ok": 0, "error": 0, "closed": 0, "stuck": 0}
    for c in idle:
        try:
            c.sock.settimeout(30)
            assert c.query("SELECT 1", timeout=30) == [("1",)]
            idle_res["ok"] += 1
        except PgError:
            idle_res["error"] += 1
        except socket.timeout:
            idle_res["stuck"] += 1
        except Exception:  # noqa: BLE001
            idle_res["closed"] += 1
        c.close()
    stats["idle_final_query"] = idle_res
    summary = {"ops": stats, "idle_clients": len(idle), "idle_login_failed": idle_failed,
               "hung_threads": hung_threads, "stuck_detail": stuck_detail[:20],
               "stuck": sum(d["stuck"] for d in stats.values()) + len(hung_threads)}
    with open(out, "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary), file=sys.stderr)


if __name__ == "__main__":
    main()
