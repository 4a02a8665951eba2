"""pgbench tpcb-like through pgmux (transaction mode, pool 20, 50 clients, 15 s), then checked
directly on PostgreSQL: balances agree, history rows equal transactions, nothing is left idle
in transaction."""

import os
import re
import subprocess

import pytest

from pgmux_helpers import PGBENCH, USERS, wait_until

BENCH_DB = "bench"


@pytest.fixture
def bench_db(pg):
    pg.sql("DROP DATABASE IF EXISTS %s" % BENCH_DB)
    pg.sql("CREATE DATABASE %s OWNER testuser" % BENCH_DB)
    env = dict(os.environ, PGPASSWORD=USERS["testuser"])
    r = subprocess.run([PGBENCH, "-i", "-s", "2", "-q", "-h", "127.0.0.1", "-p", str(pg.port),
                        "-U", "testuser", BENCH_DB], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300)
    assert r.returncode == 0, r.stdout
    yield BENCH_DB
    pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
           [BENCH_DB])
    wait_until(lambda: pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                 [BENCH_DB]) == 0, 10)
    pg.sql("DROP DATABASE IF EXISTS %s" % BENCH_DB)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_pgbench_tpcb_consistency(pgmux_factory, pg, bench_db, protocol):
    m = pgmux_factory(pool_mode="transaction", settings={"default_pool_size": 20,
                                                         "max_client_conn": 200},
                      databases={bench_db: "host=127.0.0.1 port=%d dbname=%s"
                                 % (pg.port, bench_db)})
    duration = 15 if protocol == "simple" else 8
    env = dict(os.environ, PGPASSWORD=USERS["testuser"])
    r = subprocess.run([PGBENCH, "-c", "50", "-j", "2", "-T", str(duration), "-M", protocol,
                        "-n", "-h", "127.0.0.1", "-p", str(m.port), "-U", "testuser", bench_db],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=duration + 120)
    print(r.stdout)
    assert r.returncode == 0, r.stdout
    mt = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
    assert mt, r.stdout
    txns = int(mt.group(1))
    tps = re.search(r"tps = ([\d.]+)", r.stdout)
    print("pgbench %s through pgmux: %d transactions, %s tps" % (protocol, txns,
                                                                 tps.group(1) if tps else "?"))
    assert txns > 50 * duration, "only %d transactions in %d s" % (txns, duration)
    failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
    if failed:
        assert int(failed.group(1)) == 0, r.stdout

    # no server left inside a transaction
    def no_idle_tx():
        return pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state "
                         "LIKE 'idle in transaction%%'", [bench_db]) == 0

    wait_until(no_idle_tx, 5, msg="no idle-in-transaction backends")
    # pgmux keeps at most pool_size servers. Servers closed because pgbench's clients left
    # mid-transaction at the end of -T are still exiting for a few milliseconds, so wait:
    # servers pgmux really holds beyond the limit would stay (server_idle_timeout is long).
    def n_servers():
        return pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                         [bench_db])

    wait_until(lambda: n_servers() <= 20, 5, msg="at most pool_size server connections")
    # consistency, directly on PostgreSQL
    sums = pg.sql("SELECT (SELECT sum(abalance) FROM pgbench_accounts), "
                  "(SELECT sum(bbalance) FROM pgbench_branches), "
                  "(SELECT sum(tbalance) FROM pgbench_tellers), "
                  "(SELECT sum(delta) FROM pgbench_history), "
                  "(SELECT count(*) FROM pgbench_history)", dbname=bench_db)[0]
    a, b, t, h, hcount = sums
    assert a == b == t == h, "balances disagree: accounts %s branches %s tellers %s " \
        "history %s" % (a, b, t, h)
    assert hcount == txns, "history has %d rows, pgbench reported %d transactions" % (hcount,
                                                                                     txns)
