"""Faults: PostgreSQL restarting under load, server backends killed while idle or busy, a
client vanishing in the middle of a transaction."""

import socket
import struct
import threading
import time

import psycopg2
import pytest

from pgmux_helpers import DBNAME, wait_until


@pytest.fixture
def fault_table(pg):
    pg.sql("DROP TABLE IF EXISTS fault_t; CREATE TABLE fault_t (x int, who text);"
           "GRANT ALL ON fault_t TO PUBLIC", dbname=DBNAME)
    yield "fault_t"
    pg.sql("DROP TABLE IF EXISTS fault_t", dbname=DBNAME)


def test_pg_restart_under_load(pgmux_factory, pg_up, fault_table):
    """Clients in a transaction get an error when PostgreSQL goes away; once it accepts
    connections again, the first good query through pgmux comes within 2 s (pgmux must not
    lock clients out for server_login_retry, here PgBouncer's default of 15 s)."""
    pg = pg_up
    m = pgmux_factory(settings={"default_pool_size": 5, "server_login_retry": 15,
                                "query_wait_timeout": 60})
    stop = threading.Event()
    stats = {"ok": 0, "err": 0, "ok_after_up": 0}
    lock = threading.Lock()

    def load(i):
        conn = None
        while not stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = m.connect(connect_timeout=3)
                cur = conn.cursor()
                cur.execute("INSERT INTO fault_t VALUES (%s, 'load')", (i,))
                cur.execute("SELECT pg_sleep(0.01)")
                conn.commit()
                with lock:
                    stats["ok"] += 1
                    if up_at[0] is not None:
                        stats["ok_after_up"] += 1
            except psycopg2.Error:
                with lock:
                    stats["err"] += 1
                try:
                    conn.close()
                except Exception:  # noqa: BLE001
                    pass
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()

    up_at = [None]
    threads = [threading.Thread(target=load, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    wait_until(lambda: stats["ok"] > 30, 20, msg="load running")

    # one client sits inside a transaction across the restart
    in_txn = m.connect()
    cur = in_txn.cursor()
    cur.execute("INSERT INTO fault_t VALUES (-1, 'in_txn')")

    pg.stop("fast")
    time.sleep(1.0)
    pg.start()  # pg_ctl -w: returns once PostgreSQL accepts connections
    up_at[0] = time.monotonic()

    # a fresh client: first good query time, measured from PostgreSQL being back
    first_ok = None
    deadline = up_at[0] + 15
    while time.monotonic() < deadline:
        try:
            c = m.connect(connect_timeout=3)
            c.autocommit = True
            c.cursor().execute("SELECT 1")
            c.close()
            first_ok = time.monotonic()
            break
        except psycopg2.Error:
            time.sleep(0.05)
    assert first_ok is not None, "no good query within 15 s of PostgreSQL being back"
    delay = first_ok - up_at[0]
    print("first good query %.3f s after PostgreSQL accepted connections" % delay)

    # the client that was in a transaction gets an error, then works again
    with pytest.raises(psycopg2.Error):
        cur.execute("SELECT 1")
        in_txn.commit()
    in_txn.close()

    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(20)
    assert delay <= 2.0, "first good query came %.2fs after PostgreSQL was back" % delay
    assert stats["ok_after_up"] > 0, "load clients never recovered: %s" % stats
    assert pg.scalar("SELECT count(*) FROM fault_t WHERE who = 'in_txn'", dbname=DBNAME) == 0
    assert m.alive()


def test_killed_idle_server_replaced(pgmux_factory, pg):
    """pg_terminate_backend of an idle pooled server: the next query still succeeds."""
    m = pgmux_factory(settings={"default_pool_size": 2})
    c = m.connect(autocommit=True)
    cur = c.cursor()
    for i in range(5):
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        assert pg.terminate(pid)
        wait_until(lambda: pid not in [r[0] for r in pg.backends()], 5)
        time.sleep(0.1)
        cur.execute("SELECT pg_backend_pid(), %s::int", (i,))
        new_pid, v = cur.fetchone()
        assert v == i
        assert new_pid != pid
    c.close()


def test_killed_all_idle_servers(pgmux_factory, pg):
    m = pgmux_factory(settings={"default_pool_size": 3})
    conns = [m.connect(autocommit=True) for _ in range(3)]
    # open three servers at once
    ts = [threading.Thread(target=lambda c=c: c.cursor().execute("SELECT pg_sleep(0.3)"))
          for c in conns]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    pids = [r[0] for r in pg.backends(["testuser"])]
    assert len(pids) == 3
    for pid in pids:
        pg.terminate(pid)
    wait_until(lambda: pg.count_backends(["testuser"]) == 0, 5)
    time.sleep(0.1)
    for i, c in enumerate(conns):
        cur = c.cursor()
        cur.execute("SELECT %s::int", (i,))
        assert cur.fetchone() == (i,)
    for c in conns:
        c.close()


def test_killed_active_server(pgmux_factory, pg):
    """The backend of a running query is killed: that client gets an ErrorResponse, a
    bystander on the same pool is fine, and the victim can connect again."""
    m = pgmux_factory(settings={"default_pool_size": 3})
    victim = m.raw()
    victim.login()
    victim.send(victim.msg(b"Q", b"SELECT pg_sleep(10), 'victim'\0"))
    bystander = m.connect(autocommit=True)
    res = {}

    def by():
        cur = bystander.cursor()
        cur.execute("SELECT pg_sleep(1.5), 'bystander'")
        res["v"] = cur.fetchone()

    t = threading.Thread(target=by)
    t.start()
    row = wait_until(lambda: pg.sql("SELECT pid FROM pg_stat_activity WHERE query LIKE "
                                    "'SELECT pg_sleep(10)%%' AND state = 'active'"), 5)
    pg.terminate(row[0][0])
    t0 = time.monotonic()
    msgs, how = victim.collect(5)
    errs = [b for typ, b in msgs if typ == b"E"]
    assert errs, "victim got no ErrorResponse (messages: %r, %s)" % (msgs, how)
    assert how in ("closed", "stop")
    assert time.monotonic() - t0 < 3
    assert not [b for typ, b in msgs if typ == b"D"], "victim must not get a result"
    victim.close()
    t.join(10)
    assert res.get("v") == ("", "bystander")
    c = m.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT 'back'")
    assert cur.fetchone() == ("back",)
    c.close()
    bystander.close()


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
@pytest.mark.parametrize("how", ["close", "reset"])
def test_client_vanishes_mid_transaction(pgmux_factory, pg, fault_table, pool_mode, how):
    """BEGIN + INSERT, then the socket goes away (FIN or RST): the INSERT is not committed, no
    backend stays idle in transaction, and the next client does not land inside it."""
    m = pgmux_factory(pool_mode=pool_mode, settings={"default_pool_size": 1})
    r = m.raw()
    r.login()
    r.query("BEGIN")
    r.query("INSERT INTO fault_t VALUES (42, 'vanished')")
    assert r.query("SELECT txid_current_if_assigned() IS NOT NULL") == [("t",)]
    if how == "reset":
        r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    r.close()

    def settled():
        return pg.count_backends(state="idle in transaction") == 0

    wait_until(settled, 5, msg="no idle-in-transaction backend after the client vanished")
    time.sleep(0.3)
    assert settled()
    assert pg.scalar("SELECT count(*) FROM fault_t", dbname=DBNAME) == 0
    # the next client gets a clean server (no transaction with a txid open on it)
    c = m.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT txid_current_if_assigned(), count(*) FROM fault_t")
    assert cur.fetchone() == (None, 0)
    cur.execute("INSERT INTO fault_t VALUES (1, 'next')")
    c.close()
    assert pg.sql("SELECT x, who FROM fault_t", dbname=DBNAME) == [(1, "next")]


def test_client_vanishes_mid_query(pgmux_factory, pg, fault_table):
    """The client disappears while its query runs inside a transaction: the work is not
    committed and the pool serves the next client."""
    m = pgmux_factory(settings={"default_pool_size": 1})
    r = m.raw()
    r.login()
    r.query("BEGIN")
    r.query("INSERT INTO fault_t VALUES (7, 'midquery')")
    r.send(r.msg(b"Q", b"SELECT pg_sleep(2)\0"))
    time.sleep(0.3)
    r.close()
    c = m.connect(autocommit=True)
    cur = c.cursor()
    t0 = time.monotonic()
    cur.execute("SELECT txid_current_if_assigned(), count(*) FROM fault_t")
    assert cur.fetchone() == (None, 0)
    assert time.monotonic() - t0 < 5
    c.close()
    wait_until(lambda: pg.count_backends(state="idle in transaction") == 0, 5)
    assert pg.scalar("SELECT count(*) FROM fault_t", dbname=DBNAME) == 0


def test_server_down_at_login_then_up(pgmux_factory, pg_up):
    """PostgreSQL is down when a client logs in: the client either gets an error or waits, and
    in both cases it is not left hanging once PostgreSQL is back; new clients are then served
    within 2 s."""
    pg = pg_up
    m = pgmux_factory(settings={"server_login_retry": 15, "server_connect_timeout": 2})
    pg.stop("fast")
    res = {}

    def early_client():
        try:
            c = m.connect(connect_timeout=30, autocommit=True)
            cur = c.cursor()
            cur.execute("SELECT 'early'")
            res["v"] = cur.fetchone()
            c.close()
        except psycopg2.Error as e:
            res["err"] = e
        res["t"] = time.monotonic()

    t = threading.Thread(target=early_client)
    try:
        t.start()
        time.sleep(2.0)
        assert m.alive()
    finally:
        pg.start()
    up = time.monotonic()
    t.join(30)
    assert "t" in res
    if "v" in res:
        assert res["v"] == ("early",)
        assert res["t"] - up <= 2.0, "waiting client served %.2fs after PostgreSQL came back" \
            % (res["t"] - up)

    def ok():
        c = m.connect(connect_timeout=3, autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT 'up'")
        v = cur.fetchone()
        c.close()
        return v == ("up",)

    wait_until(ok, 10, interval=0.05)
    delay = time.monotonic() - up
    assert delay <= 2.0, "first good query %.2fs after PostgreSQL came back" % delay
