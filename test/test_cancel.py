"""Cancel requests through pgmux: the canceled query stops quickly, a bystander on the same
pool is untouched, and bogus cancel keys cancel nothing."""

import socket
import struct
import threading
import time

import psycopg2
import pytest


def _run_in_thread(fn):
    res = {}

    def wrap():
        t0 = time.monotonic()
        try:
            res["value"] = fn()
        except Exception as e:  # noqa: BLE001
            res["error"] = e
        res["elapsed"] = time.monotonic() - t0

    t = threading.Thread(target=wrap)
    t.start()
    return t, res


def test_cancel_sleep_bystander_unaffected(pgmux_mode):
    m = pgmux_mode
    victim = m.connect(autocommit=True)
    bystander = m.connect(autocommit=True)

    def victim_q():
        cur = victim.cursor()
        cur.execute("SELECT pg_sleep(10)")
        return cur.fetchone()

    def bystander_q():
        cur = bystander.cursor()
        cur.execute("SELECT pg_sleep(2), 'bystander ok'")
        return cur.fetchone()

    tv, rv = _run_in_thread(victim_q)
    tb, rb = _run_in_thread(bystander_q)
    time.sleep(0.5)
    t0 = time.monotonic()
    victim.cancel()
    tv.join(15)
    took = time.monotonic() - t0
    assert isinstance(rv.get("error"), psycopg2.errors.QueryCanceled), rv
    assert took < 2.0, "cancel took %.2fs" % took
    tb.join(15)
    assert rb.get("value") == ("", "bystander ok"), rb
    assert rb["elapsed"] >= 1.9
    # both connections remain usable
    for c in (victim, bystander):
        cur = c.cursor()
        cur.execute("SELECT 'still here'")
        assert cur.fetchone() == ("still here",)
    victim.close()
    bystander.close()


@pytest.mark.parametrize("pool_mode", ["transaction"])
def test_cancel_does_not_hit_next_query(pgmux_factory, pool_mode):
    """Cancel, then at once reuse the (single) server for other short sleeps: none of them is
    canceled by a late cancel."""
    m = pgmux_factory(pool_mode=pool_mode, settings={"default_pool_size": 1})
    victim = m.connect(autocommit=True)
    other = m.connect(autocommit=True)
    for _ in range(3):
        t, r = _run_in_thread(lambda: victim.cursor().execute("SELECT pg_sleep(10)"))
        time.sleep(0.3)
        victim.cancel()
        t.join(15)
        assert isinstance(r.get("error"), psycopg2.errors.QueryCanceled), r
        co = other.cursor()
        co.execute("SELECT pg_sleep(0.3), 'other'")
        assert co.fetchone() == ("", "other")
        cv = victim.cursor()
        cv.execute("SELECT pg_sleep(0.3), 'victim again'")
        assert cv.fetchone() == ("", "victim again")
    victim.close()
    other.close()


def test_cancel_idle_client_is_harmless(pgmux):
    c = pgmux.connect(autocommit=True)
    c.cancel()
    time.sleep(0.2)
    cur = c.cursor()
    cur.execute("SELECT pg_sleep(0.5), 'ok'")
    assert cur.fetchone() == ("", "ok")
    c.close()


def test_cancel_waiting_client(pgmux_factory):
    """Cancel of a client queued for a server (pool exhausted) must not hit the query of the
    client that holds the server."""
    m = pgmux_factory(settings={"default_pool_size": 1})
    holder = m.connect(autocommit=True)
    waiter = m.connect(autocommit=True)
    th, rh = _run_in_thread(lambda: (holder.cursor().execute("SELECT pg_sleep(2)"), "held")[1])
    time.sleep(0.3)
    tw, rw = _run_in_thread(lambda: (waiter.cursor().execute("SELECT pg_sleep(5)"), "w")[1])
    time.sleep(0.3)
    waiter.cancel()
    th.join(15)
    tw.join(15)
    assert rh.get("value") == "held", "the holder must not be canceled: %r" % rh
    # A cancel for a client that has no server yet goes to nothing (PgBouncer drops it): the
    # waiting query then runs normally. Canceling it is acceptable too; anything else is not.
    assert rw.get("value") == "w" or isinstance(rw.get("error"), psycopg2.errors.QueryCanceled), rw
    cur = waiter.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    holder.close()
    waiter.close()


def test_bogus_cancel_key(pgmux):
    """A CancelRequest with a key nobody has: the connection is closed and nothing stops."""
    c = pgmux.connect(autocommit=True)
    t, r = _run_in_thread(lambda: (c.cursor().execute("SELECT pg_sleep(1.5)"), "done")[1])
    time.sleep(0.3)
    s = socket.create_connection(("127.0.0.1", pgmux.port), timeout=5)
    s.sendall(struct.pack("!iiii", 16, 80877102, 0x12345678, 0x0badcafe))
    s.settimeout(5)
    assert s.recv(100) == b""
    s.close()
    t.join(10)
    assert r.get("value") == "done", r
    c.close()


def test_cancel_from_raw_client_key(pgmux):
    """The BackendKeyData pgmux gave the client works in a CancelRequest on a new socket."""
    r = pgmux.raw()
    r.login()
    assert len(r.backend_key) == 8
    r.send(r.msg(b"Q", b"SELECT pg_sleep(10)\0"))
    time.sleep(0.3)
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", pgmux.port), timeout=5)
    s.sendall(struct.pack("!ii", 16, 80877102) + r.backend_key)
    s.settimeout(5)
    s.recv(100)
    s.close()
    with pytest.raises(Exception) as ei:
        r.read_results(timeout=5)
    assert getattr(ei.value, "sqlstate", None) == "57014"
    assert time.monotonic() - t0 < 2.0
    assert r.query("SELECT 'after cancel'") == [("after cancel",)]
    r.close()


@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_cancel_reaches_the_server_after_a_reload(pgmux_factory, pg, via):
    """The cancel goes to the address the server was connected to: a reload that changed the
    database's entry (which recycles servers once released and resolves the host anew) must
    not leave a running query without a way to cancel it."""
    host = "127.0.0.1" if via == "tcp" else pg.sockdir
    dbs = {"p0": "host=%s port=%d dbname=p0" % (host, pg.port)}
    m = pgmux_factory(databases=dbs)
    c = m.connect(autocommit=True)
    t, res = _run_in_thread(lambda: c.cursor().execute("SELECT pg_sleep(20)"))
    time.sleep(0.5)
    m.databases["p0"] = "host=%s port=%d dbname=p0 application_name=changed" % (host, pg.port)
    m.write_config()
    m.mark_log()
    m.reload()
    m.wait_log("configuration reloaded")
    c.cancel()
    t.join(25)
    assert isinstance(res.get("error"), psycopg2.errors.QueryCanceled), res
    assert res["elapsed"] < 10, res
    c.close()
