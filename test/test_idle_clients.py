"""Thousands of idle clients: 2,000 logged-in raw connections on one small pool; a sample of
them then runs queries; pgmux's RSS per idle client is measured and bounded (<= 2 KiB)."""

import random
import resource
import time

import pytest

from pgmux_helpers import SANITIZE, wait_until

N_CLIENTS = 2000
MAX_BYTES_PER_CLIENT = 2048


@pytest.mark.slow
def test_thousands_of_idle_clients(pgmux_factory, pg):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = N_CLIENTS + 500
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert soft >= need, "RLIMIT_NOFILE %d too low for %d clients" % (soft, N_CLIENTS)
    m = pgmux_factory(settings={"max_client_conn": N_CLIENTS + 100, "default_pool_size": 5,
                                "auth_type": "md5"})
    # warm up: the pool has logged into PostgreSQL and served a query
    first = m.raw()
    first.login()
    assert first.query("SELECT 1") == [("1",)]
    time.sleep(0.5)
    rss0 = m.rss_kb()

    clients = []
    t0 = time.monotonic()
    try:
        for i in range(N_CLIENTS):
            r = m.raw(timeout=20)
            r.login(application_name="idle_%d" % i)
            clients.append(r)
        login_time = time.monotonic() - t0
        time.sleep(1.0)
        rss1 = m.rss_kb()
        per_client = (rss1 - rss0) * 1024.0 / N_CLIENTS
        print("%d idle clients logged in in %.1fs; pgmux RSS %d kB -> %d kB: %.0f bytes per "
              "idle client" % (N_CLIENTS, login_time, rss0, rss1, per_client))
        # PostgreSQL sees only the pool, not the clients
        assert pg.count_backends(["testuser"]) <= 5

        # a sample of them runs queries, each sees its own application_name
        sample = random.Random(42).sample(range(N_CLIENTS), 100)
        for i in sample:
            rows = clients[i].query("SELECT current_setting('application_name'), %d" % i)
            assert rows == [("idle_%d" % i, str(i))]
        # and the rest are still connected: a second sample
        for i in sample[:20]:
            assert clients[(i + 1) % N_CLIENTS].query("SELECT 2") == [("2",)]
        assert m.alive()
        if not SANITIZE:  # ASan shadow memory and redzones make RSS meaningless
            assert per_client <= MAX_BYTES_PER_CLIENT, \
                "%.0f bytes of RSS per idle client (limit %d)" % (per_client,
                                                                 MAX_BYTES_PER_CLIENT)
    finally:
        for r in clients:
            r.close()
        first.close()
    # all gone: pgmux still serves
    def serves():
        c = m.connect(autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT 'ok'")
        v = cur.fetchone()
        c.close()
        return v == ("ok",)

    wait_until(serves, 10)
