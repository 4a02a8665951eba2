"""Pool limits and the wait queue: default_pool_size, max_client_conn, max_db_connections,
max_user_connections, reserve_pool, min_pool_size; PostgreSQL never sees more servers than
allowed, and queued clients are served in turn."""

import threading
import time

import psycopg2
import pytest

from pgmux_helpers import wait_until


class BackendMonitor:
    """Samples pg_stat_activity in a thread and keeps the maximum count seen."""

    def __init__(self, pg, usenames=("testuser",)):
        self.pg = pg
        self.usenames = list(usenames)
        self.max = 0
        self.samples = 0
        self._stop = threading.Event()
        self._conn = pg.connect()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        cur = self._conn.cursor()
        while not self._stop.is_set():
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                        "'client backend' AND usename = ANY(%s)", (self.usenames,))
            n = cur.fetchone()[0]
            self.max = max(self.max, n)
            self.samples += 1
            time.sleep(0.02)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join(5)
        self._conn.close()


def _parallel(n, fn):
    results = [None] * n
    errors = []

    def run(i):
        try:
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001
            errors.append((i, e))

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return results, errors, time.monotonic() - t0


@pytest.mark.parametrize("pool_mode", ["session", "transaction", "statement"])
def test_wait_queue_pool_of_two(pgmux_factory, pg, pool_mode):
    """Pool of 2, five clients each sleep 1 s at once: ~3 s in all, at most 2 backends."""
    m = pgmux_factory(pool_mode=pool_mode, settings={"default_pool_size": 2})
    conns = [m.connect(autocommit=True) for _ in range(5)]

    def work(i):
        cur = conns[i].cursor()
        cur.execute("SELECT pg_sleep(1), %s::int", (i,))
        v = cur.fetchone()[1]
        if pool_mode == "session":
            # session mode keeps the server until the client leaves
            conns[i].close()
        return v

    with BackendMonitor(pg) as mon:
        results, errors, took = _parallel(5, work)
    assert errors == []
    assert results == list(range(5))
    assert mon.samples > 10
    assert mon.max <= 2, "PostgreSQL saw %d backends from a pool of 2" % mon.max
    assert 2.8 <= took < 4.5, "5 x 1 s on 2 servers took %.2fs" % took
    for c in conns:
        if not c.closed:
            c.close()


def test_many_clients_small_pool(pgmux_factory, pg):
    """40 clients x 25 queries on a pool of 4: all answered correctly, at most 4 backends."""
    m = pgmux_factory(settings={"default_pool_size": 4, "max_client_conn": 100})

    def work(i):
        c = m.connect(autocommit=True)
        cur = c.cursor()
        s = 0
        for k in range(25):
            cur.execute("SELECT %s::int + %s::int", (i, k))
            s += cur.fetchone()[0]
        c.close()
        return s

    with BackendMonitor(pg) as mon:
        results, errors, _ = _parallel(40, work)
    assert errors == []
    assert results == [25 * i + 300 for i in range(40)]
    assert mon.max <= 4


def test_max_client_conn(pgmux_factory):
    m = pgmux_factory(settings={"max_client_conn": 5})
    conns = [m.connect(autocommit=True) for _ in range(5)]
    with pytest.raises(psycopg2.OperationalError) as ei:
        m.connect()
    assert "max_client_conn" in str(ei.value) or "no more connections" in str(ei.value)
    conns.pop().close()

    # a slot is free again once pgmux has noticed the disconnect
    def can_connect():
        c = m.connect(autocommit=True)
        conns.append(c)
        return True

    wait_until(can_connect, 5)
    cur = conns[-1].cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    for c in conns:
        c.close()


def test_max_db_connections(pgmux_factory, pg):
    """Two users on one database with max_db_connections=2: 2 backends in total."""
    m = pgmux_factory(settings={"default_pool_size": 5, "max_db_connections": 2})

    def work(i):
        user = "testuser" if i % 2 == 0 else "scramuser"
        c = m.connect(user=user, autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT pg_sleep(0.5), current_user")
        v = cur.fetchone()[1]
        c.close()
        return v

    with BackendMonitor(pg, ("testuser", "scramuser")) as mon:
        results, errors, took = _parallel(6, work)
    assert errors == []
    assert results == ["testuser" if i % 2 == 0 else "scramuser" for i in range(6)]
    assert mon.max <= 2, "max_db_connections=2 but PostgreSQL saw %d" % mon.max
    assert took >= 1.4


def test_max_user_connections(pgmux_factory, pg):
    """One user on two databases with max_user_connections=2: 2 backends in total."""
    m = pgmux_factory(settings={"default_pool_size": 5, "max_user_connections": 2})

    def work(i):
        db = "p0" if i % 2 == 0 else "postgres"
        c = m.connect(dbname=db, autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT pg_sleep(0.5), current_database()")
        v = cur.fetchone()[1]
        c.close()
        return v

    with BackendMonitor(pg) as mon:
        results, errors, took = _parallel(6, work)
    assert errors == []
    assert results == ["p0" if i % 2 == 0 else "postgres" for i in range(6)]
    assert mon.max <= 2, "max_user_connections=2 but PostgreSQL saw %d" % mon.max
    assert took >= 1.4


def test_reserve_pool(pgmux_factory, pg):
    """Pool 1 + reserve 1 (after 0.5 s): two 2-s sleeps overlap, using 2 servers."""
    m = pgmux_factory(settings={"default_pool_size": 1, "reserve_pool_size": 1,
                                "reserve_pool_timeout": 0.5})

    def work(i):
        c = m.connect(autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT pg_sleep(2), %s::int", (i,))
        v = cur.fetchone()[1]
        c.close()
        return v

    with BackendMonitor(pg) as mon:
        results, errors, took = _parallel(3, work)
    assert errors == []
    assert sorted(results) == [0, 1, 2]
    assert mon.max == 2, "expected exactly pool + reserve = 2 servers, saw %d" % mon.max
    # without the reserve it would take 6 s
    assert took < 5.5


def test_min_pool_size(pgmux_factory, pg):
    m = pgmux_factory(settings={"default_pool_size": 5, "min_pool_size": 3})
    c = m.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    wait_until(lambda: pg.count_backends(["testuser"]) >= 3, 10, msg="min_pool_size servers")
    time.sleep(1)
    assert pg.count_backends(["testuser"]) == 3
    c.close()


def test_pool_size_per_database_entry(pgmux_factory, pg):
    """pool_size= in a [databases] connection string overrides default_pool_size."""
    m = pgmux_factory(settings={"default_pool_size": 10},
                      databases={"p0": "host=127.0.0.1 port=%d dbname=p0 pool_size=1" % pg.port})

    def work(i):
        c = m.connect(autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT pg_sleep(0.4)")
        c.close()

    with BackendMonitor(pg) as mon:
        _, errors, took = _parallel(4, work)
    assert errors == []
    assert mon.max == 1
    assert took >= 1.5
