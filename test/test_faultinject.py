"""Fault injection (issue 9): test/faultproxy.py sits between pgmux and PostgreSQL and stalls,
drops (FIN) or resets (RST) one server connection in either direction at a chosen point:
during login, mid-DataRow, mid-COPY (in and out), between Sync and ReadyForQuery. For each:

* the victim client gets an ErrorResponse before its connection ends, or its query completes
  (a stall that ends, a login that pgmux retries): it never hangs and never sees a bare close;
* nobody else is affected: a bystander inside a transaction keeps its server (same backend
  pid) and commits, and a client of another pool keeps querying throughout;
* nothing stays linked: SHOW POOLS/SERVERS/CLIENTS show no active or waiting client and no
  linked server once the clients left, and pgmux holds exactly the server sockets the proxy
  still carries (no leaked or half-closed server);
* the pool recovers: a new client's query works afterwards.

Plus: running out of file descriptors (RLIMIT_NOFILE 64) pauses accepting, without spinning
the CPU, and accepting resumes when descriptors free up.
"""

import os
import socket
import struct
import threading
import time

import psycopg2
import pytest

from faultproxy import STARTUP, TO_CLIENT, TO_SERVER, FaultProxy
from pgmux_helpers import DBNAME, RawClient, default_userlist, wait_until

ADMIN, ADMIN_PW = "fiadmin", "fiadminpass"
MARK = "fi_victim"


# ---------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture
def proxy(pg_up):
    p = FaultProxy(pg_up.port).start()
    yield p
    p.close()


@pytest.fixture
def fi_table(pg_up):
    pg_up.sql("DROP TABLE IF EXISTS fi_t; CREATE TABLE fi_t (x int, s text);"
              "GRANT ALL ON fi_t TO PUBLIC", dbname=DBNAME)
    yield "fi_t"
    pg_up.sql("DROP TABLE IF EXISTS fi_t", dbname=DBNAME)


def fi_pgmux(pgmux_factory, proxy, pool_mode="transaction", settings=None):
    s = {"admin_users": ADMIN, "default_pool_size": 4, "server_login_retry": 1,
         "server_connect_timeout": 3, "query_wait_timeout": 30}
    s.update(settings or {})
    ul = default_userlist()
    ul[ADMIN] = ADMIN_PW
    dbs = {DBNAME: "host=127.0.0.1 port=%d dbname=%s" % (proxy.port, DBNAME)}
    return pgmux_factory(pool_mode=pool_mode, settings=s, userlist=ul, databases=dbs)


def show(m, what):
    c = psycopg2.connect(host="127.0.0.1", port=m.port, dbname="pgbouncer", user=ADMIN,
                         password=ADMIN_PW, connect_timeout=5)
    c.autocommit = True
    try:
        with c.cursor() as cur:
            cur.execute("SHOW " + what)
            cols = [d.name for d in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        c.close()


def assert_nothing_linked(m, proxy, timeout=10):
    """No client left in the pools, no linked or active server, and pgmux's server sockets
    are exactly the ones still open through the proxy."""
    state = {}

    def clean():
        pools = [p for p in show(m, "POOLS") if p["database"] == DBNAME]
        servers = [s for s in show(m, "SERVERS") if s["database"] == DBNAME]
        clients = [c for c in show(m, "CLIENTS") if c["database"] == DBNAME]
        state.update(pools=pools, servers=servers, clients=clients, live=proxy.live())
        if any(p["cl_active"] or p["cl_waiting"] or p["sv_active"] or p["sv_login"]
               for p in pools):
            return False
        if clients:
            return False
        if any(s["link"] or s["state"] not in ("idle", "used") for s in servers):
            return False
        return len(servers) == proxy.live()

    try:
        wait_until(clean, timeout, interval=0.2, msg="pools clean")
    except AssertionError as e:
        raise AssertionError("%s: %r" % (e, state)) from None


def assert_recovers(m, proxy):
    c = m.raw()
    c.login()
    assert c.query("SELECT 40 + 2") == [("42",)]
    c.close()
    assert_nothing_linked(m, proxy)


class Bystander:
    """A client inside a transaction on its own server connection (transaction mode keeps it
    linked): its backend must be the same one before and after the fault, and it commits."""

    def __init__(self, m):
        self.c = m.raw(timeout=10)
        self.c.login()
        self.c.query("BEGIN")
        self.pid = self.c.query("SELECT pg_backend_pid()")[0][0]

    def check(self):
        t0 = time.monotonic()
        assert self.c.query("SELECT pg_backend_pid()") == [(self.pid,)]
        return time.monotonic() - t0

    def finish(self):
        self.check()
        self.c.query("COMMIT")
        self.c.close()


class Looper(threading.Thread):
    """A client of another pool (md5user) querying in a loop; it must never fail."""

    def __init__(self, m):
        super().__init__(daemon=True)
        self.conn = m.connect(user="md5user", autocommit=True)
        self.stop = threading.Event()
        self.ok = 0
        self.errors = []

    def run(self):
        while not self.stop.is_set():
            try:
                with self.conn.cursor() as cur:
                    cur.execute("SELECT 1")
                    cur.fetchall()
                self.ok += 1
            except psycopg2.Error as e:
                self.errors.append(repr(e))
                return
            time.sleep(0.01)

    def finish(self):
        n = self.ok
        wait_until(lambda: self.ok > n + 3 or self.errors, 5, msg="looper still querying")
        self.stop.set()
        self.join(5)
        self.conn.close()
        assert not self.errors, self.errors
        assert self.ok >= 4


def outcome(msgs, how, cut_to_client=False):
    """'ok' (ReadyForQuery, no error), 'error' (an ErrorResponse came, then ReadyForQuery or
    the end of the connection); fails on a hang or a close without an ErrorResponse. When the
    server's stream was cut mid-message, the client may have half a message already: then
    the end of its connection is all it can get (see test_issue_9_error_not_spliced_...)."""
    types = [t for t, _ in msgs]
    assert how != "timeout", "victim stuck: no ReadyForQuery and no close (got %r)" % types
    if b"E" in types:
        return "error"
    if cut_to_client and how == "closed":
        return "error"
    assert how == "stop", "victim's connection closed without an ErrorResponse: %r" % types
    return "ok"


def run_fault(m, proxy, arm, victim, expect=None):
    """Bystanders up, fault armed (arm() returns the rule), victim runs (it returns
    (msgs, how)), then the checks of the module docstring. expect: None (error or ok), 'ok' or
    'error'."""
    by = Bystander(m)
    loop = Looper(m)
    loop.start()
    try:
        rule = arm()
        res = {}

        def go():
            try:
                res["r"] = victim()
            except Exception as e:  # noqa: BLE001
                res["exc"] = e

        t = threading.Thread(target=go, daemon=True)
        t.start()
        assert rule.fired.wait(15), "fault %r never triggered" % rule
        if rule.action == "stall" and rule.seconds:
            # the loop is not blocked by the stalled server: the bystander answers meanwhile
            assert by.check() < 1.0
        t.join(30)
        assert not t.is_alive(), "victim stuck"
        if "exc" in res:
            raise res["exc"]
        got = outcome(*res["r"], cut_to_client=(rule.direction == TO_CLIENT
                                                and rule.at == "mid"))
        if expect:
            assert got == expect, "victim: %s, expected %s (%r)" % (got, expect, res["r"])
        by.finish()
        loop.finish()
    finally:
        loop.stop.set()
    assert_nothing_linked(m, proxy)
    assert_recovers(m, proxy)
    return got


# -- victims: each returns RawClient.collect()'s (messages, how)


def simple_victim(m, sql, rows=None):
    def v():
        c = m.raw(timeout=20)
        try:
            c.login()
            c.send(c.msg(b"Q", sql.encode() + b"\0"))
            msgs, how = c.collect(timeout=20)
            if rows is not None and how == "stop" and b"E" not in [t for t, _ in msgs]:
                assert sum(1 for t, _ in msgs if t in (b"D", b"d")) == rows
            return msgs, how
        finally:
            c.close()
    return v


def extended_victim(m, sql, rows):
    def v():
        c = m.raw(timeout=20)
        try:
            c.login()
            q = sql.encode()
            c.send(c.msg(b"P", b"\0" + q + b"\0" + struct.pack("!h", 0))
                   + c.msg(b"B", b"\0\0" + struct.pack("!hhh", 0, 0, 0))
                   + c.msg(b"D", b"P\0") + c.msg(b"E", b"\0" + struct.pack("!i", 0))
                   + c.msg(b"S"))
            msgs, how = c.collect(timeout=20)
            if how == "stop" and b"E" not in [t for t, _ in msgs]:
                assert sum(1 for t, _ in msgs if t == b"D") == rows
            return msgs, how
        finally:
            c.close()
    return v


def copy_in_victim(m, n=3000):
    def v():
        c = m.raw(timeout=20)
        try:
            c.login()
            c.send(c.msg(b"Q", b"COPY fi_t FROM STDIN /* " + MARK.encode() + b" */\0"))
            t, _ = c.read_msg()
            assert t == b"G", t
            try:
                for i in range(n):
                    c.send(c.msg(b"d", b"%d\trow %d\n" % (i, i)))
                c.send(c.msg(b"c"))
            except OSError:
                pass  # the pooler closed on us mid-COPY: its ErrorResponse is in the socket
            return c.collect(timeout=20)
        finally:
            c.close()
    return v


DATAROW_SQL = ("SELECT g, repeat('x', 200) FROM generate_series(1, 3000) g /* %s */" % MARK)
COPY_OUT_SQL = ("COPY (SELECT g, repeat('y', 100) FROM generate_series(1, 3000) g) TO STDOUT "
                "/* %s */" % MARK)


# ---------------------------------------------------------------------------------------------
# login


LOGIN_FAULTS = [
    # (direction, message, at, action, nth)
    (TO_SERVER, STARTUP, "mid", "drop", 1),
    (TO_SERVER, STARTUP, "before", "reset", 1),
    (TO_CLIENT, b"R", "mid", "drop", 1),  # AuthenticationSASL cut
    (TO_CLIENT, b"R", "before", "reset", 2),  # before SASLContinue
    (TO_SERVER, b"p", "mid", "reset", 2),  # SASLResponse (client-final) cut
    (TO_CLIENT, b"R", "after", "drop", 3),  # after SASLFinal, before AuthenticationOk
    (TO_CLIENT, b"S", "mid", "drop", 3),  # ParameterStatus cut
    (TO_CLIENT, b"K", "after", "reset", 1),  # BackendKeyData, before ReadyForQuery
    (TO_CLIENT, b"Z", "mid", "drop", 1),  # the login's ReadyForQuery cut
    (TO_CLIENT, b"R", "before", "stall", 2),  # silent server: server_connect_timeout
]


@pytest.mark.parametrize("direction,msg,at,action,nth", LOGIN_FAULTS,
                         ids=["%s-%s-%s-%s%d" % (d, m if isinstance(m, str) else m.decode(), a,
                                                 ac, n) for d, m, a, ac, n in LOGIN_FAULTS])
def test_fault_during_login(pgmux_factory, proxy, direction, msg, at, action, nth):
    """The bystander holds the only server, so the victim's query makes pgmux open a new
    one, whose login breaks. pgmux retries (server_login_retry 1 s): the query completes."""
    m = fi_pgmux(pgmux_factory, proxy, settings={"server_connect_timeout": 2})
    assert m.psql("SELECT 1", user="md5user") == "1"  # warm the looper's pool

    def arm():
        return proxy.add_rule(direction, msg, at=at, action=action, nth=nth, phase="login",
                              seconds=30 if action == "stall" else None)

    got = run_fault(m, proxy, arm, simple_victim(m, "SELECT 7", rows=1))
    # login failures are not the client's business: pgmux retried
    assert got == "ok"


# ---------------------------------------------------------------------------------------------
# mid-result, mid-COPY, between Sync and ReadyForQuery


MID_FAULTS = [
    # (name, direction, message, at, action, nth, victim kind)
    ("datarow-cut-drop", TO_CLIENT, b"D", "mid", "drop", 500, "datarow"),
    ("datarow-cut-reset", TO_CLIENT, b"D", "mid", "reset", 500, "datarow"),
    ("datarow-stall", TO_CLIENT, b"D", "mid", "stall", 500, "datarow"),
    ("datarow-header-cut", TO_CLIENT, b"D", "mid", "drop", 1, "datarow-hdr"),
    ("query-cut-drop", TO_SERVER, b"Q", "mid", "drop", 1, "datarow"),
    ("query-cut-reset", TO_SERVER, b"Q", "mid", "reset", 1, "datarow"),
    ("copyout-cut-drop", TO_CLIENT, b"d", "mid", "drop", 700, "copyout"),
    ("copyout-cut-reset", TO_CLIENT, b"d", "mid", "reset", 700, "copyout"),
    ("copyout-stall", TO_CLIENT, b"d", "mid", "stall", 700, "copyout"),
    ("copyin-cut-drop", TO_SERVER, b"d", "mid", "drop", 1000, "copyin"),
    ("copyin-cut-reset", TO_SERVER, b"d", "mid", "reset", 1000, "copyin"),
    ("copyin-stall", TO_SERVER, b"d", "mid", "stall", 1000, "copyin"),
    ("copyin-done-drop", TO_SERVER, b"c", "before", "drop", 1, "copyin"),
    ("sync-rfq-drop", TO_CLIENT, b"Z", "before", "drop", 1, "extended"),
    ("sync-rfq-reset", TO_CLIENT, b"Z", "before", "reset", 1, "extended"),
    ("sync-rfq-cut", TO_CLIENT, b"Z", "mid", "drop", 1, "extended"),
    ("sync-rfq-stall", TO_CLIENT, b"Z", "before", "stall", 1, "extended"),
    ("sync-lost-drop", TO_SERVER, b"S", "before", "drop", 1, "extended"),
    ("sync-cut-reset", TO_SERVER, b"S", "mid", "reset", 1, "extended"),
]


@pytest.mark.parametrize("name,direction,msg,at,action,nth,kind", MID_FAULTS,
                         ids=[f[0] for f in MID_FAULTS])
def test_fault_mid_stream(pgmux_factory, proxy, fi_table, name, direction, msg, at, action,
                          nth, kind):
    m = fi_pgmux(pgmux_factory, proxy)
    assert m.psql("SELECT 1", user="md5user") == "1"
    if kind in ("datarow", "datarow-hdr"):
        victim = simple_victim(m, DATAROW_SQL, rows=3000)
    elif kind == "copyout":
        victim = simple_victim(m, COPY_OUT_SQL, rows=3000)
    elif kind == "copyin":
        victim = copy_in_victim(m)
    else:
        victim = extended_victim(m, "SELECT g FROM generate_series(1, 50) g /* %s */" % MARK,
                                 rows=50)

    def arm():
        return proxy.add_rule(direction, msg, at=at, action=action, nth=nth, marker=MARK,
                              seconds=1.5 if action == "stall" else None,
                              cut_at=3 if kind == "datarow-hdr" else None)

    got = run_fault(m, proxy, arm, victim, expect="ok" if action == "stall" else "error")
    if kind == "copyin":
        n = int(m.psql("SELECT count(*) FROM fi_t"))
        # COPY is all or nothing
        assert n == (3000 if got == "ok" else 0), n


@pytest.mark.parametrize("pool_mode", ["session", "statement"])
def test_fault_mid_datarow_other_modes(pgmux_factory, proxy, pool_mode):
    m = fi_pgmux(pgmux_factory, proxy, pool_mode=pool_mode)
    assert m.psql("SELECT 1", user="md5user") == "1"

    def arm():
        return proxy.add_rule(TO_CLIENT, b"D", at="mid", action="reset", nth=300, marker=MARK)

    if pool_mode == "statement":
        # statement mode refuses transactions: the bystander is the looper only
        loop = Looper(m)
        loop.start()
        rule = arm()
        got = outcome(*simple_victim(m, DATAROW_SQL)(), cut_to_client=True)
        loop.finish()
        assert rule.fired.is_set()
    else:
        got = run_fault(m, proxy, arm, simple_victim(m, DATAROW_SQL))
    assert got == "error"
    assert_nothing_linked(m, proxy)
    assert_recovers(m, proxy)


def test_stalled_server_query_timeout(pgmux_factory, proxy):
    """A server that stops sending mid-result forever: query_timeout ends the victim with an
    error, the server is closed (the proxy sees its connection go), the pool recovers."""
    m = fi_pgmux(pgmux_factory, proxy, settings={"query_timeout": 2})
    assert m.psql("SELECT 1", user="md5user") == "1"
    t0 = time.monotonic()
    got = run_fault(m, proxy, lambda: proxy.add_rule(TO_CLIENT, b"D", at="mid", action="stall",
                                                     nth=100, marker=MARK), simple_victim(m, DATAROW_SQL), expect="error")
    assert got == "error" and time.monotonic() - t0 < 15


def test_stalled_login_client_waits_then_runs(pgmux_factory, proxy):
    """The server stalls right before the login's ReadyForQuery for 1.5 s (less than
    server_connect_timeout): the waiting client is served when it arrives."""
    m = fi_pgmux(pgmux_factory, proxy)
    assert m.psql("SELECT 1", user="md5user") == "1"
    got = run_fault(m, proxy, lambda: proxy.add_rule(TO_CLIENT, b"Z", at="before",
                                                     action="stall", seconds=1.5,
                                                     phase="login"),
                    simple_victim(m, "SELECT 1", rows=1), expect="ok")
    assert got == "ok"


@pytest.mark.parametrize("cut", [30, 200])
def test_issue_9_error_not_spliced_into_partial_message(pgmux_factory, proxy, cut):
    """The server's stream ends inside a 218-byte DataRow (cut bytes in). pgmux has passed
    those bytes on; it must then close the client without writing anything more, since
    anything it writes becomes the rest of that DataRow: with cut=200 the client receives a
    complete DataRow whose last 18 bytes are the start of an ErrorResponse (a corrupt row, in
    COPY TO STDOUT a corrupt line of data), then garbage."""
    m = fi_pgmux(pgmux_factory, proxy)
    proxy.add_rule(TO_CLIENT, b"D", at="mid", action="drop", nth=500, marker=MARK, cut_at=cut)
    c = m.raw()
    c.login()
    c.send(c.msg(b"Q", DATAROW_SQL.encode() + b"\0"))
    msgs, how = c.collect(timeout=10)
    c.close()
    assert how == "closed"
    rows = [b for t, b in msgs if t == b"D"]
    assert all(b"SFATAL" not in b for b in rows), "ErrorResponse bytes inside a DataRow"
    assert b"SFATAL" not in c.buf, "ErrorResponse bytes after a partial DataRow"
    assert len(rows) == 499


# ---------------------------------------------------------------------------------------------
# file descriptor exhaustion


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def test_fd_exhaustion_pauses_and_resumes_accepting(pgmux_factory, pg_up):
    """pgmux under RLIMIT_NOFILE 64: connections beyond it stay in the listen backlog while
    accept() fails with EMFILE; pgmux stops accepting instead of spinning (CPU over 3 s while
    saturated stays low), a pooled server keeps serving the clients already in, and accepting
    resumes once descriptors are freed: a client waiting in the backlog gets in."""
    m = pgmux_factory(settings={"max_client_conn": 1000, "default_pool_size": 2,
                                "client_login_timeout": 60}, start=False)
    binary = m.binary
    m.binary = "prlimit"
    m.start(args=["--nofile=64:64", "--", binary])
    with open("/proc/%d/limits" % m.pid) as f:
        assert any(line.startswith("Max open files") and " 64 " in line for line in f)
    inside = m.raw()
    inside.login()
    assert inside.query("SELECT 1") == [("1",)]  # a server in the pool
    base = nfds(m.pid)
    m.mark_log()

    socks = []
    try:
        # connect until pgmux has run out: its fd count stops at the limit and the log says so
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", m.port), timeout=5)
            socks.append(s)
            if len(socks) > 64 - base and "not accepting" in m.new_log():
                break
            time.sleep(0.005)
        m.wait_log(r"accept\(\) failed: .*not accepting", timeout=5)
        time.sleep(0.5)
        assert nfds(m.pid) >= 60
        # saturated: no spinning
        c0, t0 = cpu_seconds(m.pid), time.monotonic()
        time.sleep(3)
        used = cpu_seconds(m.pid) - c0
        elapsed = time.monotonic() - t0
        assert used < 0.3, "pgmux used %.2f s of CPU in %.1f s while out of fds" % (used, elapsed)
        # clients already in still work
        assert inside.query("SELECT 2") == [("2",)]

        # a real client waits in the backlog ...
        res = {}

        def late():
            try:
                c = RawClient(m.port, timeout=20)
                c.login()
                res["rows"] = c.query("SELECT 3")
                c.close()
            except Exception as e:  # noqa: BLE001
                res["exc"] = e

        t = threading.Thread(target=late, daemon=True)
        t.start()
        time.sleep(1.0)
        assert t.is_alive(), "late client finished while pgmux had no descriptors: %r" % res
        # ... and gets in once descriptors are freed
        for s in socks:
            s.close()
        socks = []
        t.join(20)
        assert not t.is_alive(), "late client still waiting after fds were freed"
        assert res.get("rows") == [("3",)], res
    finally:
        for s in socks:
            s.close()
    # back to the baseline, and new clients get in
    wait_until(lambda: nfds(m.pid) <= base, 10, msg="fd count back to %d" % base)
    for _ in range(5):
        assert m.psql("SELECT 4") == "4"
    assert inside.query("SELECT 5") == [("5",)]
    inside.close()
    assert m.alive()
