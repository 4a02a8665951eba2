"""Signals with PgBouncer >= 1.23 meanings: SIGTERM waits for clients, SIGINT waits for
servers, a second one (or SIGQUIT) exits at once, SIGUSR1 pauses and SIGUSR2 resumes."""

import signal
import threading
import time

import psycopg2
import pytest

from pgmux_helpers import DBNAME, port_open, wait_until


def _exited(m, timeout):
    try:
        m.proc.wait(timeout)
        return True
    except Exception:  # noqa: BLE001
        return False


def _new_client_refused(m):
    try:
        c = m.connect(autocommit=True, connect_timeout=3)
    except psycopg2.OperationalError:
        return True
    try:
        c.cursor().execute("SELECT 1")
    except psycopg2.Error:
        return True
    finally:
        c.close()
    return False


def test_sigterm_waits_for_clients(pgmux_factory):
    m = pgmux_factory()
    m.expect_exit = True
    c = m.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT 1")
    m.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert m.alive(), "SIGTERM must wait for the connected client"
    for i in range(5):
        cur.execute("SELECT %s::int", (i,))
        assert cur.fetchone() == (i,)
        time.sleep(0.1)
    assert _new_client_refused(m), "new clients must not be accepted during shutdown"
    assert m.alive()
    c.close()
    assert _exited(m, 5), "pgmux did not exit after the last client left"
    assert m.proc.returncode == 0


def test_sigint_waits_for_servers(pgmux_factory, pg):
    pg.sql("DROP TABLE IF EXISTS sig_t; CREATE TABLE sig_t (x int); GRANT ALL ON sig_t TO PUBLIC",
           dbname=DBNAME)
    m = pgmux_factory()
    m.expect_exit = True
    c = m.connect()
    cur = c.cursor()
    cur.execute("INSERT INTO sig_t VALUES (1)")
    m.signal(signal.SIGINT)
    time.sleep(0.5)
    assert m.alive(), "SIGINT must let the open transaction finish"
    cur.execute("INSERT INTO sig_t VALUES (2)")
    c.commit()
    # the transaction is over, no server is in use: pgmux exits though the client is connected
    assert _exited(m, 5), "pgmux did not exit once its servers were released"
    assert m.proc.returncode == 0
    c.close()
    assert pg.scalar("SELECT count(*) FROM sig_t", dbname=DBNAME) == 2
    pg.sql("DROP TABLE sig_t", dbname=DBNAME)


@pytest.mark.parametrize("first", [signal.SIGTERM, signal.SIGINT])
def test_second_signal_exits_at_once(pgmux_factory, first):
    m = pgmux_factory()
    m.expect_exit = True
    c = m.connect()
    c.cursor().execute("SELECT 1")  # in a transaction: a server is in use and a client is here
    m.signal(first)
    time.sleep(0.3)
    assert m.alive()
    m.signal(first)
    assert _exited(m, 3), "a second %s must exit at once" % first.name
    c.close()


def test_sigquit_exits_at_once(pgmux_factory):
    m = pgmux_factory()
    m.expect_exit = True
    c = m.connect()
    c.cursor().execute("SELECT 1")
    m.signal(signal.SIGQUIT)
    assert _exited(m, 3)
    assert not port_open(m.port)
    c.close()


def test_sigusr1_pause_sigusr2_resume(pgmux_factory):
    m = pgmux_factory()
    c = m.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT 1")
    m.signal(signal.SIGUSR1)
    time.sleep(0.5)
    res = {}

    def q():
        cur.execute("SELECT 'resumed'")
        res["v"] = cur.fetchone()
        res["t"] = time.monotonic()

    t = threading.Thread(target=q)
    t.start()
    time.sleep(1.0)
    assert "v" not in res, "a query ran while pgmux was paused"
    assert m.alive()
    resumed_at = time.monotonic()
    m.signal(signal.SIGUSR2)
    t.join(5)
    assert res.get("v") == ("resumed",)
    assert res["t"] - resumed_at < 1.5
    c.close()
    # business as usual
    wait_until(lambda: not _new_client_refused(m), 5)
