"""Simple-protocol basics through pgmux in every pool mode: queries, large results,
multi-statement queries, errors followed by good queries, NOTICE passthrough, Terminate."""

import psycopg2
import pytest

from pgmux_helpers import DBNAME


def test_select_one(pgmux_mode):
    c = pgmux_mode.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT 1, 'two', NULL::int, 3.5::float8")
    assert cur.fetchone() == (1, "two", None, 3.5)
    cur.execute("SELECT current_user, current_database()")
    assert cur.fetchone() == ("testuser", DBNAME)
    c.close()


def test_psql(pgmux_mode):
    out = pgmux_mode.psql("SELECT 40 + 2")
    assert out == "42"


def test_100k_rows(pgmux_mode):
    c = pgmux_mode.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT g, md5(g::text) FROM generate_series(1, 100000) g")
    rows = cur.fetchall()
    assert len(rows) == 100000
    assert rows[0] == (1, "c4ca4238a0b923820dcc509a6f75849b")
    assert rows[-1][0] == 100000
    assert sum(r[0] for r in rows) == 100000 * 100001 // 2
    # and the connection is still usable afterwards
    cur.execute("SELECT count(*) FROM generate_series(1, 100000)")
    assert cur.fetchone() == (100000,)
    c.close()


def test_wide_rows(pgmux_mode):
    """Rows larger than any sane packet buffer (1 MB each) pass intact."""
    c = pgmux_mode.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT g, repeat(chr(65 + g), 1000000) FROM generate_series(0, 9) g")
    rows = cur.fetchall()
    assert [r[0] for r in rows] == list(range(10))
    for g, s in rows:
        assert len(s) == 1000000 and s == chr(65 + g) * 1000000
    # a large query text from the client side, too
    big = "x" * 3000000
    cur.execute("SELECT length(%s)", (big,))
    assert cur.fetchone() == (3000000,)
    c.close()


def test_multi_statement(pgmux_mode):
    """One Query message with several statements: psycopg2 returns the last result;
    the raw client sees every result."""
    c = pgmux_mode.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS ms(x int); SELECT 1; SELECT 2 AS two")
    assert cur.fetchone() == (2,)
    c.close()

    r = pgmux_mode.raw()
    r.login()
    rows = r.query("SELECT 1; SELECT 'a' UNION ALL SELECT 'b'; SELECT NULL")
    assert rows == [("1",), ("a",), ("b",), (None,)]
    # an error in the middle stops the rest of the string, and the next query works
    with pytest.raises(Exception) as ei:
        r.query("SELECT 1; SELECT 1/0; SELECT 3")
    assert ei.value.sqlstate == "22012"
    assert r.query("SELECT 4") == [("4",)]
    r.close()


def test_error_then_good_query(pgmux_mode):
    c = pgmux_mode.connect(autocommit=True)
    cur = c.cursor()
    for _ in range(3):
        with pytest.raises(psycopg2.errors.UndefinedTable):
            cur.execute("SELECT * FROM no_such_table_here")
        cur.execute("SELECT 7")
        assert cur.fetchone() == (7,)
        with pytest.raises(psycopg2.errors.DivisionByZero):
            cur.execute("SELECT 1/0")
        cur.execute("SELECT 8")
        assert cur.fetchone() == (8,)
        with pytest.raises(psycopg2.errors.SyntaxError):
            cur.execute("SELEC 1")
        cur.execute("SELECT 9")
        assert cur.fetchone() == (9,)
    c.close()


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_error_in_transaction_then_rollback(pgmux_factory, pool_mode):
    m = pgmux_factory(pool_mode=pool_mode)
    c = m.connect()
    cur = c.cursor()
    cur.execute("SELECT 1")
    with pytest.raises(psycopg2.errors.DivisionByZero):
        cur.execute("SELECT 1/0")
    with pytest.raises(psycopg2.errors.InFailedSqlTransaction):
        cur.execute("SELECT 2")
    c.rollback()
    cur.execute("SELECT 3")
    assert cur.fetchone() == (3,)
    c.commit()
    c.close()


def test_notice_passthrough(pgmux_mode):
    c = pgmux_mode.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("DO $$ BEGIN RAISE NOTICE 'hello from plpgsql %', 42; END $$")
    assert any("hello from plpgsql 42" in n for n in c.notices)
    c.close()


def test_empty_query(pgmux_mode):
    r = pgmux_mode.raw()
    r.login()
    r.send(r.msg(b"Q", b"\0"))
    types = []
    while True:
        t, _ = r.read_msg()
        types.append(t)
        if t == b"Z":
            break
    assert types == [b"I", b"Z"]
    assert r.query("SELECT 5") == [("5",)]
    r.close()


def test_terminate_then_others_work(pgmux_mode):
    r = pgmux_mode.raw()
    r.login()
    assert r.query("SELECT 1") == [("1",)]
    r.send(r.msg(b"X"))
    r.wait_closed(5)
    r.close()
    c = pgmux_mode.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT 2")
    assert cur.fetchone() == (2,)
    c.close()


def test_many_sequential_clients(pgmux_mode):
    """Connect/query/disconnect repeatedly: login and server reuse keep working."""
    for i in range(40):
        c = pgmux_mode.connect(autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT %s::int * 2", (i,))
        assert cur.fetchone() == (i * 2,)
        c.close()


def test_notify_passthrough(pgmux_factory):
    """NOTIFY inside a session-mode connection reaches the LISTENer on the same connection."""
    m = pgmux_factory(pool_mode="session")
    c = m.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("LISTEN pgmux_chan")
    cur.execute("NOTIFY pgmux_chan, 'payload-1'")
    c.poll()
    assert [(n.channel, n.payload) for n in c.notifies] == [("pgmux_chan", "payload-1")]
    c.close()


def test_unix_socket(pgmux_factory):
    m = pgmux_factory()
    c = psycopg2.connect(host=m.sockdir, port=m.port, dbname=DBNAME, user="testuser",
                         password="testpass", connect_timeout=10)
    cur = c.cursor()
    cur.execute("SELECT 11")
    assert cur.fetchone() == (11,)
    c.close()


def test_unknown_database(pgmux):
    with pytest.raises(psycopg2.OperationalError) as ei:
        pgmux.connect(dbname="no_such_db_xyz")
    assert "no_such_db_xyz" in str(ei.value)
    c = pgmux.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    c.close()
