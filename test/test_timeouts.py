"""Every timeout of the core pooler, observed from the client and from PostgreSQL:
query_wait_timeout, client_idle_timeout, idle_transaction_timeout, query_timeout,
server_idle_timeout, server_lifetime, client_login_timeout."""

import socket
import threading
import time

import psycopg2
import pytest

from pgmux_helpers import DBNAME, wait_until


@pytest.fixture
def tmo_table(pg):
    pg.sql("DROP TABLE IF EXISTS tmo_t; CREATE TABLE tmo_t (x int); GRANT ALL ON tmo_t TO PUBLIC",
           dbname=DBNAME)
    yield "tmo_t"
    pg.sql("DROP TABLE IF EXISTS tmo_t", dbname=DBNAME)


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_query_wait_timeout(pgmux_factory, pool_mode):
    """Pool of 1 held by a long query: a second client's query fails with query_wait_timeout
    after ~1 s, and the holder is unaffected."""
    m = pgmux_factory(pool_mode=pool_mode,
                      settings={"default_pool_size": 1, "query_wait_timeout": 1})
    holder = m.connect(autocommit=True)
    res = {}

    def hold():
        cur = holder.cursor()
        cur.execute("SELECT pg_sleep(4), 'held'")
        res["v"] = cur.fetchone()

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.3)
    waiter = m.raw()
    waiter.login()
    t0 = time.monotonic()
    waiter.send(waiter.msg(b"Q", b"SELECT 1\0"))
    msgs = waiter.wait_closed(6)
    took = time.monotonic() - t0
    errs = [b for typ, b in msgs if typ == b"E"]
    assert errs and b"query_wait_timeout" in errs[0], msgs
    assert not [b for typ, b in msgs if typ == b"D"], "the waiting query must not have run"
    assert 0.8 <= took < 3.0, "query_wait_timeout=1 fired after %.2fs" % took
    # psycopg2 sees it as a lost connection
    w2 = m.connect(autocommit=True)
    time.sleep(0.1)
    with pytest.raises(psycopg2.OperationalError):
        w2.cursor().execute("SELECT 1")
    t.join(10)
    assert res.get("v") == ("", "held")
    holder.close()


def test_client_idle_timeout(pgmux_factory):
    m = pgmux_factory(settings={"client_idle_timeout": 1})
    c = m.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT 1")
    busy = m.connect(autocommit=True)
    # a client that keeps working is not disconnected
    for _ in range(6):
        time.sleep(0.4)
        busy.cursor().execute("SELECT 1")
    time.sleep(0.5)
    with pytest.raises((psycopg2.OperationalError, psycopg2.InterfaceError)):
        cur.execute("SELECT 2")
    # raw: the close comes with an error naming the timeout
    r = m.raw()
    r.login()
    t0 = time.monotonic()
    msgs = r.wait_closed(5)
    took = time.monotonic() - t0
    assert 0.8 <= took < 3.5, "client_idle_timeout=1 fired after %.2fs" % took
    errs = [b for t, b in msgs if t == b"E"]
    assert errs and b"client_idle_timeout" in errs[0], msgs
    c2 = m.connect(autocommit=True)
    c2.cursor().execute("SELECT 3")
    c2.close()
    busy.close()


def test_idle_transaction_timeout(pgmux_factory, pg, tmo_table):
    m = pgmux_factory(settings={"idle_transaction_timeout": 1})
    c = m.connect()
    cur = c.cursor()
    cur.execute("INSERT INTO tmo_t VALUES (1)")
    # a transaction that keeps talking is fine
    for _ in range(5):
        time.sleep(0.4)
        cur.execute("SELECT count(*) FROM tmo_t")
        assert cur.fetchone() == (1,)
    time.sleep(2.0)
    with pytest.raises((psycopg2.OperationalError, psycopg2.InterfaceError)):
        cur.execute("SELECT 1")
        c.commit()
    # the INSERT was not committed and no backend sits idle in transaction
    assert pg.scalar("SELECT count(*) FROM tmo_t", dbname=DBNAME) == 0
    wait_until(lambda: pg.count_backends(state="idle in transaction") == 0, 5,
               msg="no idle-in-transaction backend")
    # raw: the client is told why
    r = m.raw()
    r.login()
    r.query("BEGIN")
    t0 = time.monotonic()
    msgs = r.wait_closed(5)
    took = time.monotonic() - t0
    assert 0.8 <= took < 3.5, "idle_transaction_timeout=1 fired after %.2fs" % took
    errs = [b for t, b in msgs if t == b"E"]
    assert errs and b"idle transaction timeout" in errs[0], msgs
    c2 = m.connect(autocommit=True)
    c2.cursor().execute("SELECT 1")
    c2.close()


def test_query_timeout(pgmux_factory, pg):
    m = pgmux_factory(settings={"query_timeout": 1})
    r = m.raw()
    r.login()
    t0 = time.monotonic()
    r.send(r.msg(b"Q", b"SELECT pg_sleep(5)\0"))
    msgs = r.wait_closed(6)
    took = time.monotonic() - t0
    errs = [b for typ, b in msgs if typ == b"E"]
    assert errs and (b"query_timeout" in errs[0] or b"query timeout" in errs[0]), msgs
    assert 0.8 <= took < 3.0, "query_timeout=1 fired after %.2fs" % took
    # the backend running the sleep does not stay busy with it
    wait_until(lambda: pg.count_backends(state="active") == 0, 5, msg="sleep backend gone")
    # short queries are fine
    c2 = m.connect(autocommit=True)
    cur = c2.cursor()
    cur.execute("SELECT pg_sleep(0.3), 'quick'")
    assert cur.fetchone() == ("", "quick")
    c2.close()


def test_server_idle_timeout(pgmux_factory, pg):
    m = pgmux_factory(settings={"server_idle_timeout": 1})
    c = m.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    assert pid in [r[0] for r in pg.backends()]
    t0 = time.monotonic()
    wait_until(lambda: pid not in [r[0] for r in pg.backends()], 6,
               msg="server backend %d closed after server_idle_timeout" % pid)
    took = time.monotonic() - t0
    assert took >= 0.5, "server closed too early (%.2fs)" % took
    # the client itself is still connected and gets a new server
    cur.execute("SELECT pg_backend_pid()")
    assert cur.fetchone()[0] != pid
    c.close()


def test_server_lifetime(pgmux_factory, pg):
    m = pgmux_factory(settings={"server_lifetime": 1, "default_pool_size": 1})
    c = m.connect(autocommit=True)
    cur = c.cursor()
    pids = []
    t_end = time.monotonic() + 4
    while time.monotonic() < t_end:
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        if not pids or pids[-1] != pid:
            pids.append(pid)
        time.sleep(0.1)
    assert len(pids) >= 2, "server_lifetime=1 but one server lived 4 s"
    assert len(pids) <= 6
    live = [r[0] for r in pg.backends()]
    for old in pids[:-1]:
        wait_until(lambda: old not in [r[0] for r in pg.backends()], 5,
                   msg="old server %d gone" % old)
    assert pids[-1] in live
    c.close()


def test_client_login_timeout_silent_socket(pgmux_factory):
    m = pgmux_factory(settings={"client_login_timeout": 1})
    s = socket.create_connection(("127.0.0.1", m.port), timeout=10)
    t0 = time.monotonic()
    s.settimeout(6)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    took = time.monotonic() - t0
    s.close()
    assert 0.8 <= took < 3.5, "silent socket closed after %.2fs" % took
    c = m.connect(autocommit=True)
    c.cursor().execute("SELECT 1")
    c.close()


def test_client_login_timeout_stalled_auth(pgmux_factory):
    """Startup sent, password never sent: the login times out."""
    m = pgmux_factory(settings={"client_login_timeout": 1})
    r = m.raw()
    r.startup("testuser")
    t, body = r.read_msg()
    assert t == b"R"
    t0 = time.monotonic()
    r.wait_closed(6)
    took = time.monotonic() - t0
    assert took < 3.5, "stalled login closed after %.2fs" % took
    r.close()
    r2 = m.raw()
    r2.login()
    assert r2.query("SELECT 1") == [("1",)]
    r2.close()


def test_timeouts_do_not_fire_when_disabled(pgmux_factory):
    """With all timeouts at 0 (defaults), idle clients and transactions are left alone."""
    m = pgmux_factory(settings={"client_idle_timeout": 0, "idle_transaction_timeout": 0,
                                "query_timeout": 0})
    c = m.connect()
    cur = c.cursor()
    cur.execute("SELECT 1")
    time.sleep(2.5)
    cur.execute("SELECT pg_sleep(1.2), 2")
    assert cur.fetchone() == ("", 2)
    c.commit()
    c.close()




def test_idle_transaction_timeout_counts_from_the_last_answer(pgmux_factory):
    """A statement that runs longer than idle_transaction_timeout inside a transaction is not
    idle time: the client may send its next statement right after the answer."""
    m = pgmux_factory(settings={"idle_transaction_timeout": 2})
    c = m.connect()
    cur = c.cursor()
    cur.execute("SELECT pg_sleep(3)")  # psycopg2 opened a transaction first
    time.sleep(0.5)
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    c.commit()
    c.close()


def test_server_lifetime_zero_uses_each_server_once(pgmux_factory):
    """server_lifetime = 0: every server connection serves one client (PgBouncer's meaning)."""
    m = pgmux_factory(settings={"server_lifetime": 0, "default_pool_size": 1})
    pids = set()
    for _ in range(3):
        c = m.connect(autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT pg_backend_pid()")
        pids.add(cur.fetchone()[0])
        c.close()
        time.sleep(0.2)
    assert len(pids) == 3, pids


def test_transaction_timeout_pipelined_begin(pgmux_factory):
    """A BEGIN pipelined right behind another transaction's statement starts a transaction
    whose age is counted from then, not from the epoch."""
    m = pgmux_factory(settings={"transaction_timeout": 5})
    r = m.raw()
    r.login()
    r.send(r.msg(b"Q", b"SELECT 1\0") + r.msg(b"Q", b"BEGIN\0"))
    r.read_results()
    r.read_results()
    time.sleep(1.5)  # several janitor rounds, still far from 5 s
    assert r.query("SELECT 2") == [("2",)]
    assert r.query("COMMIT") == []
    r.close()
