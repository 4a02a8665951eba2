"""A server connection changes hands only between messages and only when PostgreSQL waits for
nothing more from the previous client. Each test makes the next client (pool_size 1, so it
must get the very server the first client used) depend on that:

* a COPY FROM STDIN fails while the client is in the middle of sending a CopyData: the
  server's ErrorResponse and ReadyForQuery arrive, but PostgreSQL still reads the rest of
  that CopyData, so whatever the next client sent would be swallowed as COPY data;
* a COPY over the extended protocol ends (CopyDone or CopyFail) and the client leaves without
  the Sync that ends its implicit transaction: the next client's query must not commit the
  rows, or be discarded by a backend that waits for a Sync;
* session mode: a client leaves while its cancel request is in flight: server_reset_query
  must still run before the next client gets the server;
* query_timeout ends a client while the server is stalled inside a DataRow: pgmux must not
  write its ErrorResponse into the middle of that row.
"""

import socket
import struct
import threading
import time

import pytest

from faultproxy import TO_CLIENT, FaultProxy
from pgmux_helpers import DBNAME, RawClient, wait_until

TABLE = "ho_t"


@pytest.fixture
def ho_table(pg_up):
    pg_up.sql("DROP TABLE IF EXISTS %s; CREATE TABLE %s (x int);"
              "GRANT ALL ON %s TO PUBLIC" % (TABLE, TABLE, TABLE), dbname=DBNAME)
    yield TABLE
    pg_up.sql("DROP TABLE IF EXISTS %s" % TABLE, dbname=DBNAME)


def _one_server(pgmux_factory, pool_mode="transaction", **settings):
    s = {"default_pool_size": 1, "query_wait_timeout": 30}
    s.update(settings)
    return pgmux_factory(pool_mode=pool_mode, settings=s)


def _query_in_thread(m, sql):
    """Run sql on a new client in a thread; returns (thread, result dict)."""
    out = {}

    def go():
        c = m.raw(timeout=20)
        try:
            c.login()
            out["rows"] = c.query(sql, timeout=20)
        except Exception as e:  # noqa: BLE001 - reported by the caller's assertions
            out["error"] = repr(e)
        finally:
            c.close()
    t = threading.Thread(target=go)
    t.start()
    return t, out


def _wait_copy_in(c):
    while True:
        t, body = c.read_msg(timeout=10)
        if t == b"G":
            return
        assert t not in (b"E", b"Z"), (t, body)


def test_copy_error_mid_copydata_keeps_server_until_message_ends(pgmux_factory, ho_table):
    m = _one_server(pgmux_factory)
    a = m.raw()
    a.login()
    a.send(a.msg(b"Q", b"COPY ho_t FROM STDIN\0"))
    _wait_copy_in(a)
    # a bad first line, then the head of a 1000-byte CopyData: PostgreSQL reports the error
    # and goes on reading that CopyData to its end
    a.send(a.msg(b"d", b"not-a-number\n"))
    a.send(b"d" + struct.pack("!i", 1004) + b"1\n" * 5)
    msgs, how = a.collect(timeout=10)
    assert how == "stop", (msgs, how)
    assert any(t == b"E" for t, _ in msgs)
    # the next client waits for the server: it must not be handed over mid-CopyData
    t, out = _query_in_thread(m, "SELECT 42")
    time.sleep(1.0)
    assert "rows" not in out and "error" not in out, out
    a.send(b"1\n" * 495)  # the rest of the CopyData: now the server can change hands
    t.join(20)
    assert out.get("rows") == [("42",)], out
    a.send(a.msg(b"c"))  # CopyDone: dropped, the server is no longer linked
    a.close()
    assert m.psql("SELECT count(*) FROM ho_t") == "0"
    assert m.alive()


@pytest.mark.parametrize("end", [b"c", b"f"])
def test_extended_copy_without_sync_does_not_leak(pgmux_factory, pg_up, ho_table, end):
    m = _one_server(pgmux_factory)
    a = m.raw()
    a.login()
    assert a.query("SELECT 1") == [("1",)]  # the server has ended a transaction before
    a.send(a.msg(b"P", b"\0COPY ho_t FROM STDIN\0\0\0")
           + a.msg(b"B", b"\0\0\0\0\0\0\0\0")
           + a.msg(b"E", b"\0\0\0\0\0")
           + a.msg(b"S"))
    _wait_copy_in(a)
    a.send(a.msg(b"d", b"7\n"))
    a.send(a.msg(end, b"" if end == b"c" else b"client gave up\0"))
    time.sleep(0.3)
    a.close()  # no Sync: PostgreSQL must roll the COPY back
    t, out = _query_in_thread(m, "SELECT count(*) FROM ho_t")
    t.join(25)
    assert out.get("rows") == [("0",)], out
    assert pg_up.scalar("SELECT count(*) FROM ho_t", dbname=DBNAME) == 0


def _cancel(m, key):
    s = socket.create_connection(("127.0.0.1", m.port), timeout=5)
    s.sendall(struct.pack("!ii", 16, 80877102) + key)
    return s


def test_session_reset_runs_after_a_cancel(pgmux_factory):
    m = _one_server(pgmux_factory, pool_mode="session", server_reset_query="DISCARD ALL")
    for i in range(5):
        a = m.raw()
        a.login()
        a.query("SET ho.leak = 'from-a-%d'" % i)
        key = a.backend_key
        cs = _cancel(m, key)
        a.send(a.msg(b"X"))  # leave while the cancel is on its way
        a.close()
        cs.close()
        b = m.raw()
        b.login()
        got = b.query("SELECT current_setting('ho.leak', true)")
        b.close()
        assert got in ([(None,)], [("",)]), "session state of the previous client: %r" % got


def test_query_timeout_mid_datarow_writes_no_error_inside(pgmux_factory, pg_up):
    proxy = FaultProxy(pg_up.port).start()
    try:
        dbs = {DBNAME: "host=127.0.0.1 port=%d dbname=%s" % (proxy.port, DBNAME)}
        m = pgmux_factory(settings={"query_timeout": 2}, databases=dbs)
        proxy.add_rule(TO_CLIENT, b"D", at="mid", action="stall", nth=50, marker=b"ho_stall",
                       cut_at=100)
        c = m.raw()
        c.login()
        c.send(c.msg(b"Q", b"SELECT g, repeat('x', 200) FROM generate_series(1, 300) g "
                           b"/* ho_stall */\0"))
        msgs, how = c.collect(timeout=15)
        c.close()
        assert how == "closed", how
        rows = [b for t, b in msgs if t == b"D"]
        assert len(rows) == 49
        assert b"SFATAL" not in c.buf and all(b"SFATAL" not in r for r in rows)
        wait_until(lambda: m.psql("SELECT 1") == "1", 15)
    finally:
        proxy.close()
