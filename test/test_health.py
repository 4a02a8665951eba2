"""Health endpoints (issue 6): /health/live stays 200 while the loop turns; /health/ready is
200 normally, 503 while paused (SIGUSR1), while PostgreSQL is down and while shutting down,
and 200 again after SIGUSR2 / PostgreSQL back; /health is JSON with the per-pool detail."""

import json
import signal
import time

import pytest

from pgmux_helpers import DBNAME, wait_until
from test_metrics import http_get, obs_pgmux

pytestmark = pytest.mark.usefixtures("not_pgbouncer")


@pytest.fixture
def not_pgbouncer(is_pgbouncer):
    if is_pgbouncer:
        pytest.skip("pgmux extension: PgBouncer has no health endpoints")


def ready(m):
    status, _, body = http_get(m.health_port, "/health/ready")
    return status, body


def live(m):
    return http_get(m.health_port, "/health/live")[0]


def test_ready_and_live_normally(pgmux_factory):
    m = obs_pgmux(pgmux_factory)
    assert live(m) == 200
    assert ready(m) == (200, "ready\n"), "no pool yet: ready"
    assert m.psql("SELECT 1") == "1"
    assert ready(m) == (200, "ready\n")
    status, headers, body = http_get(m.health_port, "/health")
    assert status == 200 and headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["status"] == "ready" and doc["version"] and doc["uptime_seconds"] >= 0
    assert doc["paused"] is False and doc["shutting_down"] is False
    (pool,) = doc["pools"]
    assert pool["database"] == DBNAME and pool["user"] == "testuser"
    assert pool["pool_mode"] == "transaction" and pool["reachable"] is True
    assert pool["max"] == 5 and pool["waiting"] == 0 and pool["last_error"] == ""
    assert pool["used"] + pool["idle"] >= 1
    # HEAD: same status and headers, no body
    status, headers, body = http_get(m.health_port, "/health/ready", method="HEAD")
    assert status == 200 and body == "" and headers["content-length"] == "6"


def test_pause_resume(pgmux_factory):
    m = obs_pgmux(pgmux_factory)
    assert m.psql("SELECT 1") == "1"
    m.signal(signal.SIGUSR1)
    wait_until(lambda: ready(m) == (503, "not ready: paused\n"), 10, msg="503 paused")
    assert live(m) == 200
    assert json.loads(http_get(m.health_port, "/health")[2])["paused"] is True
    m.signal(signal.SIGUSR2)
    wait_until(lambda: ready(m)[0] == 200, 10, msg="200 after resume")
    assert live(m) == 200
    assert m.psql("SELECT 2") == "2"


def test_postgres_down_and_back(pgmux_factory, pg_up):
    m = obs_pgmux(pgmux_factory, settings={"query_wait_timeout": "3"})
    assert m.psql("SELECT 1") == "1"
    assert ready(m)[0] == 200
    pg_up.stop()
    try:
        status, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(ready(m)), 15,
                                  msg="503 with PostgreSQL down")
        assert "unreachable" in body and DBNAME in body, body
        assert live(m) == 200
        doc = json.loads(http_get(m.health_port, "/health")[2])
        assert doc["status"] == "not ready" and doc["pools"][0]["reachable"] is False
        # a client trying meanwhile fails and keeps it 503
        r = m.psql("SELECT 1", check=False, timeout=60)
        assert r.returncode != 0
        assert ready(m)[0] == 503
    finally:
        pg_up.start()
    wait_until(lambda: ready(m)[0] == 200, 20, msg="200 with PostgreSQL back")
    assert live(m) == 200
    assert m.psql("SELECT 3") == "3"


def test_shutting_down(pgmux_factory):
    m = obs_pgmux(pgmux_factory)
    c = m.connect()
    c.cursor().execute("SELECT 1")      # a transaction stays open: the server stays in use
    m.expect_exit = True
    m.signal(signal.SIGINT)
    wait_until(lambda: ready(m) == (503, "not ready: shutting down\n"), 10, msg="503 shutdown")
    assert live(m) == 200
    c.rollback()
    c.close()
    m.proc.wait(15)


def test_separate_ports(pgmux_factory):
    m = obs_pgmux(pgmux_factory, shared=False)
    assert http_get(m.stats_port, "/metrics")[0] == 200
    assert http_get(m.stats_port, "/health/ready")[0] == 404
    assert http_get(m.health_port, "/health/ready")[0] == 200
    assert http_get(m.health_port, "/metrics")[0] == 404


def test_liveness_throughout_load(pgmux_factory):
    """Liveness and readiness answer quickly while clients keep the pool busy."""
    m = obs_pgmux(pgmux_factory)
    conns = [m.connect(autocommit=True) for _ in range(10)]
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < 2:
        for c in conns:
            c.cursor().execute("SELECT 1")
        t = time.monotonic()
        assert live(m) == 200 and ready(m)[0] == 200
        assert time.monotonic() - t < 1.0
        n += 1
    for c in conns:
        c.close()
    assert n > 0


def test_suspend_resume(pgmux_factory):
    """SUSPEND on the admin console makes readiness 503 "suspended" until RESUME."""
    import psycopg2
    from pgmux_helpers import default_userlist
    ul = default_userlist()
    ul["hadmin"] = "hadminpw"
    m = obs_pgmux(pgmux_factory, settings={"admin_users": "hadmin"}, userlist=ul)
    assert m.psql("SELECT 1") == "1"
    con = psycopg2.connect(host="127.0.0.1", port=m.port, dbname="pgbouncer", user="hadmin",
                           password="hadminpw", connect_timeout=10)
    con.autocommit = True
    try:
        con.cursor().execute("SUSPEND")
        assert ready(m) == (503, "not ready: suspended\n")
        assert live(m) == 200
        con.cursor().execute("RESUME")
        wait_until(lambda: ready(m)[0] == 200, 10, msg="200 after RESUME")
    finally:
        con.close()
    assert m.psql("SELECT 2") == "2"
