"""Extended query protocol (Parse/Bind/Describe/Execute/Close/Sync/Flush) through pgmux:
psycopg 3 with server-side binding and unnamed statements, pipelining, and raw messages."""

import struct
import threading

import psycopg
import pytest

from pgmux_helpers import RawClient, parse_error_fields


def test_params_types(pgmux_mode):
    with pgmux_mode.connect3() as c:
        row = c.execute("SELECT %s::int + 1, %s::text || 'b', %s::float8, %s::bool, %s::int",
                        (41, "a", 2.5, True, None)).fetchone()
        assert row == (42, "ab", 2.5, True, None)
        # binary results
        cur = c.cursor(binary=True)
        cur.execute("SELECT %s::bigint * 2, %s::bytea", (2 ** 40, b"\x00\x01\xff"))
        assert cur.fetchone() == (2 ** 41, b"\x00\x01\xff")


def test_extended_100k_rows(pgmux_mode):
    with pgmux_mode.connect3() as c:
        rows = c.execute("SELECT g, g::text FROM generate_series(1, %s) g", (100000,)).fetchall()
        assert len(rows) == 100000
        assert rows[0] == (1, "1") and rows[-1] == (100000, "100000")
        assert sum(r[0] for r in rows) == 100000 * 100001 // 2


def test_extended_error_then_good(pgmux_mode):
    with pgmux_mode.connect3() as c:
        for i in range(5):
            with pytest.raises(psycopg.errors.DivisionByZero):
                c.execute("SELECT 1 / %s", (0,))
            assert c.execute("SELECT %s::int", (i,)).fetchone() == (i,)
            with pytest.raises(psycopg.errors.UndefinedTable):
                c.execute("SELECT * FROM no_such_table WHERE x = %s", (1,))
            assert c.execute("SELECT %s::text", ("ok",)).fetchone() == ("ok",)


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_extended_transaction(pgmux_factory, pool_mode):
    m = pgmux_factory(pool_mode=pool_mode)
    with m.connect3(autocommit=False) as c:
        c.execute("CREATE TEMP TABLE IF NOT EXISTS ext_t (x int)")
        c.execute("INSERT INTO ext_t SELECT generate_series(1, %s)", (10,))
        assert c.execute("SELECT count(*) FROM ext_t").fetchone() == (10,)
        c.rollback()


def test_executemany(pgmux_factory, pool_mode, pg):
    m = pgmux_factory(pool_mode=pool_mode)
    table = "em_%s" % pool_mode
    pg.sql("DROP TABLE IF EXISTS %s; CREATE TABLE %s (a int, b text); GRANT ALL ON %s TO PUBLIC"
           % (table, table, table), dbname="p0")
    with m.connect3() as c:
        cur = c.cursor()
        cur.executemany("INSERT INTO %s VALUES (%%s, %%s)" % table,
                        [(i, "v%d" % i) for i in range(500)])
        assert c.execute("SELECT count(*), sum(a) FROM %s" % table).fetchone() == (500, 124750)
    pg.sql("DROP TABLE %s" % table, dbname="p0")


def test_pipeline(pgmux_mode):
    """psycopg 3 pipeline mode: several queries in flight, results in order."""
    with pgmux_mode.connect3() as c:
        with c.pipeline():
            curs = [c.execute("SELECT %s::int * 10", (i,)) for i in range(50)]
        assert [cur.fetchone()[0] for cur in curs] == [i * 10 for i in range(50)]
        # an error in a pipeline aborts the rest up to the sync; the connection recovers
        with pytest.raises(psycopg.errors.DivisionByZero):
            with c.pipeline():
                c.execute("SELECT 1")
                c.execute("SELECT 1 / %s", (0,))
                c.execute("SELECT 3")
        assert c.execute("SELECT %s::int", (99,)).fetchone() == (99,)


def _parse(name, sql, types=()):
    body = name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!h", len(types))
    for t in types:
        body += struct.pack("!i", t)
    return RawClient.msg(b"P", body)


def _bind(portal, stmt, params=()):
    body = portal.encode() + b"\0" + stmt.encode() + b"\0" + struct.pack("!h", 0)
    body += struct.pack("!h", len(params))
    for p in params:
        if p is None:
            body += struct.pack("!i", -1)
        else:
            b = p.encode()
            body += struct.pack("!i", len(b)) + b
    body += struct.pack("!h", 0)
    return RawClient.msg(b"B", body)


def _describe(kind, name):
    return RawClient.msg(b"D", kind + name.encode() + b"\0")


def _execute(portal, maxrows=0):
    return RawClient.msg(b"E", portal.encode() + b"\0" + struct.pack("!i", maxrows))


def _close(kind, name):
    return RawClient.msg(b"C", kind + name.encode() + b"\0")


SYNC = RawClient.msg(b"S")
FLUSH = RawClient.msg(b"H")


def _read_until_z(r):
    out = []
    while True:
        t, body = r.read_msg()
        out.append((t, body))
        if t == b"Z":
            return out


def _datarows(msgs):
    rows = []
    for t, body in msgs:
        if t == b"D":
            (n,) = struct.unpack("!h", body[:2])
            off, row = 2, []
            for _ in range(n):
                (ln,) = struct.unpack("!i", body[off:off + 4])
                off += 4
                row.append(None if ln < 0 else body[off:off + ln].decode())
                off += max(ln, 0)
            rows.append(tuple(row))
    return rows


def test_raw_extended_sequence(pgmux_mode):
    r = pgmux_mode.raw()
    r.login()
    r.send(_parse("", "SELECT $1::int + $2::int", (23, 23)) + _bind("", "", ("2", "3"))
           + _describe(b"P", "") + _execute("") + _close(b"S", "") + SYNC)
    msgs = _read_until_z(r)
    types = [t for t, _ in msgs]
    assert types == [b"1", b"2", b"T", b"D", b"C", b"3", b"Z"]
    assert _datarows(msgs) == [("5",)]
    assert msgs[-1][1] == b"I"
    r.close()


def test_raw_extended_flush_then_sync(pgmux_mode):
    """Parse/Bind/Execute + Flush: the results arrive before any Sync; then Sync ends it."""
    r = pgmux_mode.raw()
    r.login()
    r.send(_parse("", "SELECT 'flushed'") + _bind("", "") + _execute("") + FLUSH)
    got = [r.read_msg() for _ in range(4)]
    assert [t for t, _ in got] == [b"1", b"2", b"D", b"C"]
    assert _datarows(got) == [("flushed",)]
    r.send(SYNC)
    t, body = r.read_msg()
    assert (t, body) == (b"Z", b"I")
    assert r.query("SELECT 1") == [("1",)]
    r.close()


def test_raw_extended_error_skips_to_sync(pgmux_mode):
    r = pgmux_mode.raw()
    r.login()
    r.send(_parse("", "SELECT g / 0 FROM generate_series(1, 1) g") + _bind("", "") + _execute("")
           + _parse("", "SELECT 'not run'") + _bind("", "") + _execute("") + SYNC
           + _parse("", "SELECT 'after sync'") + _bind("", "") + _execute("") + SYNC)
    first = _read_until_z(r)
    assert [t for t, _ in first] == [b"1", b"2", b"E", b"Z"]
    second = _read_until_z(r)
    assert _datarows(second) == [("after sync",)]
    r.close()


def test_raw_pipelined_syncs(pgmux_mode):
    """Many Parse/Bind/Execute/Sync groups sent in one write: all answered, in order."""
    r = pgmux_mode.raw()
    r.login()
    batch = b""
    for i in range(200):
        batch += _parse("", "SELECT %d" % i) + _bind("", "") + _execute("") + SYNC
    r.send(batch)
    got = []
    for i in range(200):
        got.extend(_datarows(_read_until_z(r)))
    assert got == [(str(i),) for i in range(200)]
    r.close()


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_raw_portal_partial_fetch(pgmux_factory, pool_mode):
    """Execute with a row limit returns PortalSuspended; the next Execute continues."""
    m = pgmux_factory(pool_mode=pool_mode)
    r = m.raw()
    r.login()
    r.query("BEGIN")
    r.send(_parse("", "SELECT generate_series(1, 5)") + _bind("p1", "") + _execute("p1", 2)
           + SYNC)
    msgs = _read_until_z(r)
    assert [t for t, _ in msgs] == [b"1", b"2", b"D", b"D", b"s", b"Z"]
    assert msgs[-1][1] == b"T"
    r.send(_execute("p1", 0) + SYNC)
    msgs = _read_until_z(r)
    assert _datarows(msgs) == [("3",), ("4",), ("5",)]
    r.query("COMMIT")
    r.close()


def test_unnamed_statements_interleaved_clients(pgmux_factory):
    """Transaction mode, one server: clients alternate unnamed Parse/Bind/Execute/Sync and each
    gets its own statement's result."""
    m = pgmux_factory(pool_mode="transaction", settings={"default_pool_size": 1})
    conns = [m.connect3() for _ in range(4)]
    for rnd in range(25):
        for i, c in enumerate(conns):
            v = c.execute("SELECT %s::int * 1000 + %s::int", (i, rnd)).fetchone()[0]
            assert v == i * 1000 + rnd
    for c in conns:
        c.close()


def test_extended_concurrent_threads(pgmux_factory):
    """20 threads, pool of 3, extended protocol: every result belongs to its thread."""
    m = pgmux_factory(pool_mode="transaction", settings={"default_pool_size": 3})
    errors = []

    def worker(n):
        try:
            with m.connect3() as c:
                for k in range(30):
                    v = c.execute("SELECT %s::int, pg_backend_pid() > 0", (n * 100 + k,)).fetchone()
                    if v != (n * 100 + k, True):
                        errors.append((n, k, v))
        except Exception as e:  # noqa: BLE001
            errors.append((n, repr(e)))

    ts = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert errors == []


def test_pipelined_simple_queries(pgmux_factory, pool_mode):
    """Fifty Query messages in one write: fifty answers, in order (the server must stay with
    the client while queries are outstanding, even when a ReadyForQuery 'I' comes between)."""
    m = pgmux_factory(pool_mode=pool_mode, settings={"default_pool_size": 1})
    r = m.raw()
    r.login()
    r.send(b"".join(r.msg(b"Q", b"SELECT %d\0" % i) for i in range(50)))
    got = []
    for _ in range(50):
        got.extend(r.read_results())
    assert got == [(str(i),) for i in range(50)]
    r.close()


def test_pipelines_of_two_clients_on_one_server(pgmux_factory):
    """Transaction mode, one server: two clients each pipeline 100 Parse/Bind/Execute/Sync
    groups at the same time; each gets exactly its own results, in order."""
    m = pgmux_factory(pool_mode="transaction", settings={"default_pool_size": 1})
    clients = []
    for tag in ("a", "b"):
        r = m.raw()
        r.login()
        clients.append((tag, r))
    for tag, r in clients:
        batch = b""
        for i in range(100):
            batch += _parse("", "SELECT '%s%d'" % (tag, i)) + _bind("", "") + _execute("") + SYNC
        r.send(batch)
    for tag, r in clients:
        got = []
        for _ in range(100):
            got.extend(_datarows(_read_until_z(r)))
        assert got == [("%s%d" % (tag, i),) for i in range(100)]
        r.close()


def test_flush_without_sync_keeps_server(pgmux_factory):
    """Parse/Bind/Execute + Flush with no Sync: the transaction is not over, so another client
    must not get the (only) server until the Sync."""
    m = pgmux_factory(pool_mode="transaction", settings={"default_pool_size": 1})
    a = m.raw()
    a.login()
    a.send(_parse("", "SELECT pg_backend_pid()") + _bind("", "") + _execute("") + FLUSH)
    got = [a.read_msg() for _ in range(4)]
    assert [t for t, _ in got] == [b"1", b"2", b"D", b"C"]
    b = m.raw()
    b.login()
    b.send(b.msg(b"Q", b"SELECT 'b ran'\0"))
    msgs, how = b.collect(0.7)
    assert how == "timeout" and not msgs, "B got the server while A's pipeline was open"
    a.send(SYNC)
    assert a.read_msg() == (b"Z", b"I")
    assert b.read_results() == [("b ran",)]
    a.close()
    b.close()


def _errors(msgs):
    return [parse_error_fields(b).get("C") for t, b in msgs if t == b"E"]


def test_named_parse_skipped_after_error_is_forgotten(pgmux_factory):
    """An error in a pipeline (ended by Flush, not Sync) makes PostgreSQL skip everything up
    to the Sync, including a named Parse the client sends after the error arrived. pgmux
    must not later count that statement as prepared on the server: a client that prepares
    the same text afterwards (on the same and only server) gets it prepared again."""
    m = pgmux_factory(pool_mode="transaction", settings={"default_pool_size": 1})
    a = m.raw()
    a.login()
    a.send(_parse("a", "SELECT 1/$1::int") + _bind("", "a", ["0"]) + _execute("") + FLUSH)
    msgs = []
    while not any(t == b"E" for t, _ in msgs):
        msgs.append(a.read_msg())
    assert _errors(msgs) == ["22012"]
    # sent after the error: skipped by PostgreSQL
    a.send(_parse("b", "SELECT 2") + SYNC)
    assert _read_until_z(a)[-1] == (b"Z", b"I")
    a.send(_parse("c", "SELECT 3") + _bind("", "c") + _execute("") + SYNC)
    msgs = _read_until_z(a)
    assert _errors(msgs) == [] and _datarows(msgs) == [("3",)]
    # the text of "b" again, under a new name, from another client on the same server
    b = m.raw()
    b.login()
    b.send(_parse("x", "SELECT 2") + _bind("", "x") + _execute("") + SYNC)
    msgs = _read_until_z(b)
    assert _errors(msgs) == [] and _datarows(msgs) == [("2",)], msgs
    # and "b" itself does not exist for a, as PostgreSQL would say
    a.send(_bind("", "b") + _execute("") + SYNC)
    assert _errors(_read_until_z(a)) == ["26000"]
    a.close()
    b.close()


@pytest.mark.parametrize("msg", ["parse", "bind", "describe", "close"])
def test_reserved_statement_names_refused(pgmux_factory, msg):
    """PGMUX_<n> is how pgmux names shared statements on servers: a client message naming
    one would reach a statement other clients use, so it ends that client's connection."""
    m = pgmux_factory(pool_mode="transaction")
    a = m.raw()
    a.login()
    a.send(_parse("mine", "SELECT 1") + SYNC)
    _read_until_z(a)
    bad = {"parse": _parse("PGMUX_1", "SELECT 2"), "bind": _bind("", "PGMUX_1"),
           "describe": _describe(b"S", "PGMUX_1"), "close": _close(b"S", "PGMUX_1")}[msg]
    a.send(bad + SYNC)
    msgs, how = a.collect(timeout=5)
    errs = [parse_error_fields(b) for t, b in msgs if t == b"E"]
    assert how == "closed" and errs and "reserved by pgmux" in errs[0]["M"], (msgs, how)
    a.close()
    # others are unaffected
    b = m.raw()
    b.login()
    b.send(_parse("x", "SELECT 1") + _bind("", "x") + _execute("") + SYNC)
    assert _datarows(_read_until_z(b)) == [("1",)]
    b.close()


def test_skipped_parse_forgets_only_its_own_name(pgmux_factory):
    """Two names for one text: a Parse of the second one that PostgreSQL skips (an error came
    first) forgets that name only; the first still works."""
    m = pgmux_factory(pool_mode="transaction", settings={"default_pool_size": 1})
    a = m.raw()
    a.login()
    a.send(_parse("a", "SELECT 1") + SYNC)
    assert _errors(_read_until_z(a)) == []
    a.send(_bind("", "nosuch") + _parse("b", "SELECT 1") + SYNC)
    assert _errors(_read_until_z(a)) == ["26000"]
    a.send(_bind("", "a") + _execute("") + SYNC)
    msgs = _read_until_z(a)
    assert _errors(msgs) == [] and _datarows(msgs) == [("1",)], msgs
    a.send(_bind("", "b") + _execute("") + SYNC)
    assert _errors(_read_until_z(a)) == ["26000"]
    a.close()


def test_deallocate_all_keeps_names_prepared_after_it(pgmux_factory):
    """DEALLOCATE ALL and a Parse after it in one pipeline: PostgreSQL has the later statement,
    so the client's name for it must survive the DEALLOCATE ALL's CommandComplete."""
    m = pgmux_factory(pool_mode="transaction")
    a = m.raw()
    a.login()
    a.send(_parse("old", "SELECT 0") + SYNC)
    assert _errors(_read_until_z(a)) == []
    a.send(_parse("", "DEALLOCATE ALL") + _bind("", "") + _execute("")
           + _parse("s1", "SELECT 1") + _bind("", "s1") + _execute("") + SYNC)
    msgs = _read_until_z(a)
    assert _errors(msgs) == [] and _datarows(msgs) == [("1",)], msgs
    a.send(_bind("", "s1") + _execute("") + SYNC)
    msgs = _read_until_z(a)
    assert _errors(msgs) == [] and _datarows(msgs) == [("1",)], msgs
    a.send(_bind("", "old") + _execute("") + SYNC)
    assert _errors(_read_until_z(a)) == ["26000"]
    a.close()


def test_statements_on_server_stay_bounded_after_errors(pgmux_factory):
    """max_prepared_statements bounds what a server connection holds even when errors make
    PostgreSQL skip the Close that evicted a statement: the statement is still there, so it
    stays counted and is closed later."""
    m = pgmux_factory(pool_mode="transaction", settings={"default_pool_size": 1,
                                                         "max_prepared_statements": 2})
    a = m.raw()
    a.login()
    for i in range(8):
        # an error first, so the eviction's Close (and this Parse) are skipped
        a.send(_bind("", "nosuch") + _parse("e%d" % i, "SELECT %d" % (100 + i)) + SYNC)
        assert _errors(_read_until_z(a)) == ["26000"]
        a.send(_parse("ok%d" % i, "SELECT %d" % i) + _bind("", "ok%d" % i) + _execute("")
               + SYNC)
        msgs = _read_until_z(a)
        assert _errors(msgs) == [] and _datarows(msgs) == [(str(i),)], msgs
    held = a.query("SELECT count(*) FROM pg_prepared_statements")
    assert int(held[0][0]) <= 2, held
    a.close()
