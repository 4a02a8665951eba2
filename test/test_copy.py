"""COPY in and out through pgmux: psycopg2 copy_expert, psycopg 3 copy, raw CopyFail, errors
during COPY followed by good queries, COPY inside a transaction."""

import io
import threading

import psycopg2
import pytest

from pgmux_helpers import DBNAME


@pytest.fixture
def copy_table(pg, request):
    name = "copy_t_%d" % (abs(hash(request.node.nodeid)) % 100000)
    pg.sql("DROP TABLE IF EXISTS %s; CREATE TABLE %s (id int PRIMARY KEY, v text);"
           "GRANT ALL ON %s TO PUBLIC" % (name, name, name), dbname=DBNAME)
    yield name
    pg.sql("DROP TABLE IF EXISTS %s" % name, dbname=DBNAME)


def test_copy_in_out(pgmux_mode, pg, copy_table):
    c = pgmux_mode.connect(autocommit=True)
    cur = c.cursor()
    data = "".join("%d\tvalue %d\n" % (i, i) for i in range(1, 20001))
    cur.copy_expert("COPY %s FROM STDIN" % copy_table, io.StringIO(data))
    assert cur.rowcount == 20000
    # verified directly on PostgreSQL
    assert pg.sql("SELECT count(*), sum(id) FROM %s" % copy_table, dbname=DBNAME) == \
        [(20000, 20000 * 20001 // 2)]
    out = io.StringIO()
    cur.copy_expert("COPY (SELECT * FROM %s ORDER BY id) TO STDOUT" % copy_table, out)
    assert out.getvalue() == data
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    c.close()


def test_copy_out_large(pgmux_mode):
    c = pgmux_mode.connect(autocommit=True)
    cur = c.cursor()
    out = io.BytesIO()
    cur.copy_expert("COPY (SELECT g, repeat('y', 200) FROM generate_series(1, 100000) g) "
                    "TO STDOUT", out)
    lines = out.getvalue().split(b"\n")
    assert lines[-1] == b""
    assert len(lines) == 100001
    assert lines[99999] == b"100000\t" + b"y" * 200
    cur.execute("SELECT 2")
    assert cur.fetchone() == (2,)
    c.close()


def test_copy_in_bad_row_then_good_query(pgmux_mode, pg, copy_table):
    """A data error in the middle of COPY FROM: the client gets the error, nothing is loaded,
    and the next query on the same connection works."""
    c = pgmux_mode.connect(autocommit=True)
    cur = c.cursor()
    data = "".join("%d\tok\n" % i for i in range(1, 5001)) + "notanumber\tbad\n" + \
        "".join("%d\tok\n" % i for i in range(5001, 10001))
    with pytest.raises(psycopg2.errors.InvalidTextRepresentation):
        cur.copy_expert("COPY %s FROM STDIN" % copy_table, io.StringIO(data))
    cur.execute("SELECT 'after copy error'")
    assert cur.fetchone() == ("after copy error",)
    assert pg.scalar("SELECT count(*) FROM %s" % copy_table, dbname=DBNAME) == 0
    # a duplicate key error at the end of COPY, then a good COPY
    with pytest.raises(psycopg2.errors.UniqueViolation):
        cur.copy_expert("COPY %s FROM STDIN" % copy_table, io.StringIO("1\ta\n1\tb\n"))
    cur.copy_expert("COPY %s FROM STDIN" % copy_table, io.StringIO("1\ta\n2\tb\n"))
    cur.execute("SELECT count(*) FROM %s" % copy_table)
    assert cur.fetchone() == (2,)
    c.close()


def test_copy_fail_from_client(pgmux_mode, pg, copy_table):
    """The client aborts COPY with CopyFail: the server reports an error, the connection
    stays usable, and nothing is loaded."""
    r = pgmux_mode.raw()
    r.login()
    r.send(r.msg(b"Q", ("COPY %s FROM STDIN" % copy_table).encode() + b"\0"))
    t, _ = r.read_msg()
    assert t == b"G"
    r.send(r.msg(b"d", b"1\tone\n") + r.msg(b"d", b"2\ttwo\n")
           + r.msg(b"f", b"client changed its mind\0"))
    t, body = r.read_msg()
    assert t == b"E" and b"client changed its mind" in body
    t, body = r.read_msg()
    assert t == b"Z"
    assert r.query("SELECT 'alive'") == [("alive",)]
    r.close()
    assert pg.scalar("SELECT count(*) FROM %s" % copy_table, dbname=DBNAME) == 0


def test_copy_raw_done(pgmux_mode, pg, copy_table):
    r = pgmux_mode.raw()
    r.login()
    r.send(r.msg(b"Q", ("COPY %s FROM STDIN" % copy_table).encode() + b"\0"))
    t, _ = r.read_msg()
    assert t == b"G"
    for i in range(1, 101):
        r.send(r.msg(b"d", ("%d\tv\n" % i).encode()))
    r.send(r.msg(b"c"))
    t, body = r.read_msg()
    assert t == b"C" and body.startswith(b"COPY 100")
    assert r.read_msg() == (b"Z", b"I")
    r.close()
    assert pg.scalar("SELECT count(*) FROM %s" % copy_table, dbname=DBNAME) == 100


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_copy_in_transaction(pgmux_factory, pool_mode, pg, copy_table):
    m = pgmux_factory(pool_mode=pool_mode)
    c = m.connect()
    cur = c.cursor()
    cur.copy_expert("COPY %s FROM STDIN" % copy_table, io.StringIO("1\ta\n2\tb\n3\tc\n"))
    cur.execute("SELECT count(*) FROM %s" % copy_table)
    assert cur.fetchone() == (3,)
    c.rollback()
    assert pg.scalar("SELECT count(*) FROM %s" % copy_table, dbname=DBNAME) == 0
    cur.copy_expert("COPY %s FROM STDIN" % copy_table, io.StringIO("4\td\n"))
    c.commit()
    assert pg.scalar("SELECT count(*) FROM %s" % copy_table, dbname=DBNAME) == 1
    c.close()


def test_copy_psycopg3(pgmux_mode, pg, copy_table):
    with pgmux_mode.connect3() as c:
        with c.cursor() as cur:
            with cur.copy("COPY %s (id, v) FROM STDIN" % copy_table) as cp:
                for i in range(1, 1001):
                    cp.write_row((i, "p3-%d" % i))
            rows = []
            with cur.copy("COPY (SELECT id, v FROM %s ORDER BY id) TO STDOUT" % copy_table) as cp:
                for row in cp.rows():
                    rows.append(row)
        assert len(rows) == 1000
        assert rows[0] == ("1", "p3-1") and rows[-1] == ("1000", "p3-1000")
        assert c.execute("SELECT %s::int", (5,)).fetchone() == (5,)
    assert pg.scalar("SELECT count(*) FROM %s" % copy_table, dbname=DBNAME) == 1000


def test_copy_shared_server(pgmux_factory, pg, copy_table):
    """Transaction mode, one server: two clients COPY alternately; both loads land whole."""
    m = pgmux_factory(pool_mode="transaction", settings={"default_pool_size": 1})
    errors = []

    def loader(base):
        try:
            c = m.connect(autocommit=True)
            cur = c.cursor()
            for k in range(10):
                start = base + k * 100
                data = "".join("%d\tt\n" % i for i in range(start, start + 100))
                cur.copy_expert("COPY %s FROM STDIN" % copy_table, io.StringIO(data))
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    ts = [threading.Thread(target=loader, args=(b,)) for b in (0, 100000)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert errors == []
    assert pg.scalar("SELECT count(*) FROM %s" % copy_table, dbname=DBNAME) == 2000
