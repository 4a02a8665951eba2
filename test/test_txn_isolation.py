"""Transactions of clients that share one server connection stay apart: nothing leaks across
BEGIN/ROLLBACK, SET LOCAL stays local, session state is reset between session-mode clients,
and a server-side cursor works inside a transaction."""

import threading
import time

import psycopg2
import pytest

from pgmux_helpers import DBNAME, wait_until


@pytest.fixture
def iso_table(pg):
    pg.sql("DROP TABLE IF EXISTS iso_t; CREATE TABLE iso_t (who text, n int);"
           "GRANT ALL ON iso_t TO PUBLIC", dbname=DBNAME)
    yield "iso_t"
    pg.sql("DROP TABLE IF EXISTS iso_t", dbname=DBNAME)


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_interleaved_rollbacks_isolated(pgmux_factory, pg, pool_mode, iso_table):
    """Pool size 1 in transaction mode: A's open transaction holds the only server, B waits,
    and neither sees the other's rolled-back rows. In session mode (pool 2) they run side by
    side and still see nothing of each other's uncommitted work."""
    m = pgmux_factory(pool_mode=pool_mode,
                      settings={"default_pool_size": 1 if pool_mode == "transaction" else 2})
    a = m.connect()
    b = m.connect()
    ca, cb = a.cursor(), b.cursor()
    for rnd in range(5):
        ca.execute("INSERT INTO iso_t VALUES ('a', %s)", (rnd,))
        ca.execute("SELECT count(*) FROM iso_t WHERE who = 'a'")
        assert ca.fetchone() == (1,)
        ca.execute("SELECT pg_backend_pid()")
        pid_a = ca.fetchone()[0]

        result = {}

        def run_b():
            cb.execute("SELECT pg_backend_pid(), count(*) FILTER (WHERE who = 'a'), now() "
                        "FROM iso_t")
            result["b"] = cb.fetchone()
            result["b_time"] = time.monotonic()
            cb.execute("INSERT INTO iso_t VALUES ('b', %s)", (rnd,))
            cb.execute("SELECT count(*) FROM iso_t")
            result["b_count"] = cb.fetchone()[0]
            b.rollback()

        t = threading.Thread(target=run_b)
        t.start()
        time.sleep(0.3)
        if pool_mode == "transaction":
            # B is queued behind A's transaction: it has no result yet
            assert "b" not in result, "B ran while A held the only server in a transaction"
        else:
            t.join(10)
            assert result["b"][1] == 0, "B saw A's uncommitted row"
        ca.execute("SELECT count(*) FROM iso_t WHERE who = 'b'")
        assert ca.fetchone() == (0,)
        rollback_time = time.monotonic()
        a.rollback()
        t.join(10)
        assert not t.is_alive()
        pid_b, seen_a, _ = result["b"]
        assert seen_a == 0, "B saw A's rolled-back row"
        assert result["b_count"] == 1, "B must see exactly its own row"
        if pool_mode == "transaction":
            assert pid_b == pid_a, "pool size 1: both must use the same server"
            assert result["b_time"] >= rollback_time
    assert pg.scalar("SELECT count(*) FROM iso_t", dbname=DBNAME) == 0
    a.close()
    b.close()


def test_commit_visible_to_next_client(pgmux_factory, pg, iso_table):
    m = pgmux_factory(pool_mode="transaction", settings={"default_pool_size": 1})
    a = m.connect()
    b = m.connect()
    ca, cb = a.cursor(), b.cursor()
    ca.execute("INSERT INTO iso_t VALUES ('a', 1)")
    a.commit()
    cb.execute("SELECT who, n FROM iso_t")
    assert cb.fetchall() == [("a", 1)]
    b.commit()
    a.close()
    b.close()


def test_set_local_does_not_leak(pgmux_factory):
    m = pgmux_factory(pool_mode="transaction", settings={"default_pool_size": 1})
    a = m.connect()
    b = m.connect(autocommit=True)
    ca, cb = a.cursor(), b.cursor()
    cb.execute("SHOW statement_timeout")
    default = cb.fetchone()[0]
    ca.execute("SET LOCAL statement_timeout = '4321ms'")
    ca.execute("SET LOCAL search_path = 'nowhere'")
    ca.execute("SHOW statement_timeout")
    assert ca.fetchone() == ("4321ms",)
    ca.execute("SELECT pg_backend_pid()")
    pid_a = ca.fetchone()[0]
    a.commit()
    cb.execute("SELECT current_setting('statement_timeout'), current_setting('search_path'), "
               "pg_backend_pid()")
    st, sp, pid_b = cb.fetchone()
    assert pid_b == pid_a
    assert st == default and st != "4321ms"
    assert sp != "nowhere"
    a.close()
    b.close()


def test_session_state_reset_between_clients(pgmux_factory):
    """Session mode, pool 1: server_reset_query (DISCARD ALL) wipes the previous client's
    session SETs and temp tables before the next client gets the server."""
    m = pgmux_factory(pool_mode="session", settings={"default_pool_size": 1})
    a = m.connect(autocommit=True)
    ca = a.cursor()
    ca.execute("SET statement_timeout = '9876ms'")
    ca.execute("CREATE TEMP TABLE leftover (x int)")
    ca.execute("SELECT pg_backend_pid()")
    pid_a = ca.fetchone()[0]
    a.close()

    def next_client():
        b = m.connect(autocommit=True)
        try:
            cb = b.cursor()
            cb.execute("SELECT pg_backend_pid(), current_setting('statement_timeout'), "
                       "to_regclass('pg_temp.leftover') IS NULL")
            return cb.fetchone()
        finally:
            b.close()

    pid_b, st, no_temp = wait_until(next_client, 10)
    assert pid_b == pid_a, "pool size 1: the server must be reused"
    assert st != "9876ms", "session SET leaked to the next client"
    assert no_temp, "temp table leaked to the next client"


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_cursor_in_transaction(pgmux_factory, pool_mode):
    """A server-side cursor (DECLARE/FETCH) inside a transaction while other clients run
    queries on the same pool."""
    m = pgmux_factory(pool_mode=pool_mode, settings={"default_pool_size": 2})
    c = m.connect()
    other = m.connect(autocommit=True)
    co = other.cursor()
    cur = c.cursor(name="big_cursor")
    cur.itersize = 1000
    cur.execute("SELECT g FROM generate_series(1, 20000) g")
    total, n = 0, 0
    while True:
        rows = cur.fetchmany(1000)
        if not rows:
            break
        n += len(rows)
        total += sum(r[0] for r in rows)
        co.execute("SELECT %s::int", (n,))
        assert co.fetchone() == (n,)
    assert n == 20000 and total == 20000 * 20001 // 2
    cur.close()
    c.commit()
    # the cursor is gone after the transaction
    with pytest.raises(psycopg2.errors.InvalidCursorName):
        c.cursor().execute("FETCH 1 FROM big_cursor")
    c.rollback()
    c.close()
    other.close()


def test_statement_mode_rejects_transaction(pgmux_factory):
    """Statement mode: a multi-statement transaction is refused (the client gets an error)."""
    m = pgmux_factory(pool_mode="statement")
    c = m.connect()
    cur = c.cursor()
    with pytest.raises(psycopg2.Error):
        cur.execute("SELECT 1")
        cur.execute("SELECT 2")
        c.commit()
    c.close()
    c = m.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT 3")
    assert cur.fetchone() == (3,)
    c.close()
