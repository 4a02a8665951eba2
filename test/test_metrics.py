"""/metrics (issue 6): counters after a known workload, histograms, two pools' labels,
promtool check metrics, timeouts/cancels/reloads/logins counters, stats_auth and stats_allow.

The helpers here (HTTP client, exposition parser, an observability-enabled pgmux) are used
by the other observability test files too."""

import base64
import http.client
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import psycopg2
import pytest

from pgmux_helpers import DBNAME, PgError, free_port, md5_secret, scram_secret, wait_until

pytestmark = pytest.mark.usefixtures("not_pgbouncer")


@pytest.fixture
def not_pgbouncer(is_pgbouncer):
    if is_pgbouncer:
        pytest.skip("pgmux extension: PgBouncer has no built-in /metrics")


# ---------------------------------------------------------------------------------------------
# Helpers shared by the observability tests


def obs_pgmux(factory, shared=True, settings=None, **kw):
    """A pgmux with the stats listener on (and the health listener on the same port, or on
    its own when shared=False). Sets .stats_port and .health_port on the returned object."""
    stats_port = free_port()
    health_port = stats_port if shared else free_port()
    s = {"stats_listen_addr": "127.0.0.1", "stats_listen_port": stats_port,
         "health_listen_addr": "127.0.0.1", "health_listen_port": health_port}
    s.update(settings or {})
    m = factory(settings=s, **kw)
    m.stats_port = stats_port
    m.health_port = health_port
    wait_until(lambda: http_get(stats_port, "/health/live" if shared else "/metrics")[0] > 0,
               10, msg="HTTP listener up")
    return m


def http_get(port, path, method="GET", headers=None, timeout=10):
    """One request on a fresh connection: (status, headers dict (lowercase names), body str)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        body = r.read().decode()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        conn.close()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format -> {(name, frozenset(labels.items())): float}; also checks
    that every family's samples are contiguous and every sample has a TYPE line."""
    out, types, seen_done, current = {}, {}, set(), None
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, "bad sample line: %r" % line
        name, labels, value = m.group(1), m.group(3) or "", m.group(4)
        family = re.sub(r"_(bucket|sum|count)$", "", name) if re.sub(
            r"_(bucket|sum|count)$", "", name) in types else name
        assert family in types, "no TYPE for %s" % name
        if family != current:
            assert family not in seen_done, "family %s is split" % family
            if current:
                seen_done.add(current)
            current = family
        lab = frozenset(_LABEL.findall(labels))
        out[(name, lab)] = float(value)
    return out


def scrape(m, path="/metrics"):
    status, headers, body = http_get(m.stats_port, path)
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse_metrics(body)


def val(metrics, name, **labels):
    key = (name, frozenset(labels.items()))
    assert key in metrics, "no sample %s%r" % (name, labels)
    return metrics[key]


def pool_val(metrics, name, db, user, **labels):
    return val(metrics, name, database=db, user=user, **labels)


def series(metrics, name):
    return {k[1]: v for k, v in metrics.items() if k[0] == name}


def ensure_promtool():
    """Path of promtool; installs Debian's prometheus package if needed, else skips."""
    path = shutil.which("promtool")
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "prometheus"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                           timeout=600)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=600)
            r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends",
                                "prometheus"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env, timeout=600)
        path = shutil.which("promtool")
        if path:
            return path
        pytest.skip("promtool unavailable: apt-get install prometheus failed: %s"
                    % r.stdout[-300:])
    pytest.skip("promtool unavailable and cannot be installed (not root or no apt-get)")


# ---------------------------------------------------------------------------------------------
# Workload and counters


def workload(m, pool_mode):
    """A known workload on two pools. Returns the expected (queries, xacts) per pool."""
    a = m.raw()
    a.login("testuser")
    for _ in range(5):
        assert a.query("SELECT 1") == [("1",)]
        queries, xacts = 5, 5
    if pool_mode != "statement":
        for _ in range(2):
            a.query("BEGIN")
            a.query("SELECT 2")
            a.query("SELECT 3")
            a.query("COMMIT")
        queries, xacts = queries + 8, xacts + 2
    with pytest.raises(PgError) as e:
        a.query("SELECT * FROM no_such_table_here")
    assert e.value.fields.get("C") == "42P01"
    queries, xacts = queries + 1, xacts + 1
    a.close()

    b = m.raw()
    b.login("md5user", database="postgres")
    for _ in range(3):
        b.query("SELECT 1")
    b.close()
    return {(DBNAME, "testuser"): (queries, xacts), ("postgres", "md5user"): (3, 3)}


def test_counters_after_workload(pgmux_factory, pool_mode):
    m = obs_pgmux(pgmux_factory, pool_mode=pool_mode)
    expected = workload(m, pool_mode)
    wait_until(lambda: val(scrape(m), "pgmux_pool_client_connections", database=DBNAME,
                           user="testuser", state="active") == 0, 10, msg="clients gone")
    mt = scrape(m)

    pools = {(dict(k)["database"], dict(k)["user"]) for k in series(mt, "pgmux_pool_size")}
    assert pools == set(expected), "exactly the two pools, with the right labels"
    for (db, user), (queries, xacts) in expected.items():
        assert pool_val(mt, "pgmux_queries_total", db, user) == queries
        assert pool_val(mt, "pgmux_transactions_total", db, user) == xacts
        # Histograms: _count equals the counter, +Inf equals _count, buckets are cumulative.
        for h, n in (("pgmux_transaction_duration_seconds", xacts),
                     ("pgmux_query_duration_seconds", queries)):
            assert pool_val(mt, h + "_count", db, user) == n, h
            assert pool_val(mt, h + "_bucket", db, user, le="+Inf") == n, h
            buckets = sorted(((float(dict(k)["le"]), v) for k, v in
                              series(mt, h + "_bucket").items()
                              if dict(k)["database"] == db), key=lambda x: x[0])
            values = [v for _, v in buckets]
            assert values == sorted(values), "cumulative buckets for %s" % h
            assert pool_val(mt, h + "_sum", db, user) > 0
        assigned = pool_val(mt, "pgmux_server_assignments_total", db, user)
        assert pool_val(mt, "pgmux_client_wait_seconds_count", db, user) == assigned
        assert pool_val(mt, "pgmux_pool_client_logins_total", db, user) == 1
        assert pool_val(mt, "pgmux_received_bytes_total", db, user) > 0
        assert pool_val(mt, "pgmux_sent_bytes_total", db, user) > 0
        assert pool_val(mt, "pgmux_server_connects_total", db, user, result="success") >= 1
        assert pool_val(mt, "pgmux_server_connects_total", db, user, result="failure") == 0
        assert pool_val(mt, "pgmux_pool_size", db, user) == 5
        assert pool_val(mt, "pgmux_pool_reachable", db, user) == 1
    assert pool_val(mt, "pgmux_errors_total", DBNAME, "testuser", source="server",
                    sqlstate_class="42") == 1
    assert not [k for k in series(mt, "pgmux_errors_total") if dict(k)["user"] == "md5user"]
    assert val(mt, "pgmux_client_logins_total", result="success") == 2
    assert val(mt, "pgmux_client_logins_total", result="auth_failure") == 0
    assert val(mt, "pgmux_pools") == 2
    assert val(mt, "pgmux_paused") == 0
    build = series(mt, "pgmux_build_info")
    assert len(build) == 1 and list(build.values()) == [1.0]
    assert dict(next(iter(build)))["version"]
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_open_fds", "process_max_fds", "process_start_time_seconds"):
        assert val(mt, name) > 0, name
    assert abs(val(mt, "process_start_time_seconds") - time.time()) < 600


def test_session_mode_counts_each_transaction(pgmux_factory):
    """In session mode the server stays linked: transactions are still counted one by one."""
    m = obs_pgmux(pgmux_factory, pool_mode="session")
    c = m.connect()          # psycopg2, autocommit off: BEGIN ... COMMIT per transaction
    cur = c.cursor()
    for i in range(4):
        cur.execute("SELECT %s", (i,))
        c.commit()
    mt = scrape(m)
    assert pool_val(mt, "pgmux_transactions_total", DBNAME, "testuser") == 4
    assert pool_val(mt, "pgmux_transaction_duration_seconds_count", DBNAME, "testuser") == 4
    assert pool_val(mt, "pgmux_server_assignments_total", DBNAME, "testuser") == 1
    c.close()


def test_promtool_check_metrics(pgmux_factory):
    promtool = ensure_promtool()
    m = obs_pgmux(pgmux_factory)
    workload(m, "transaction")
    # a login failure and a pooler error make their series appear too
    with pytest.raises(psycopg2.OperationalError):
        m.connect(password="wrong")
    status, headers, body = http_get(m.stats_port, "/metrics")
    assert status == 200
    r = subprocess.run([promtool, "check", "metrics"], input=body, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout


def test_login_failures_and_pooler_errors(pgmux_factory):
    m = obs_pgmux(pgmux_factory, settings={"query_timeout": "1"})
    with pytest.raises(psycopg2.OperationalError):
        m.connect(password="wrong")
    with pytest.raises(psycopg2.OperationalError):
        m.connect(dbname="no_such_db_here")
    c = m.connect(autocommit=True)
    with pytest.raises(psycopg2.Error):
        c.cursor().execute("SELECT pg_sleep(5)")
    c.close()
    mt = scrape(m)
    assert val(mt, "pgmux_client_logins_total", result="auth_failure") == 1
    assert val(mt, "pgmux_client_logins_total", result="rejected") == 1
    assert val(mt, "pgmux_client_logins_total", result="success") == 1
    assert pool_val(mt, "pgmux_client_timeouts_total", DBNAME, "testuser",
                    timeout="query_timeout") == 1
    assert pool_val(mt, "pgmux_errors_total", DBNAME, "testuser", source="pgmux",
                    sqlstate_class="57") == 1


def test_cancel_counter(pgmux_factory):
    m = obs_pgmux(pgmux_factory)
    c = m.connect(autocommit=True)
    cur = c.cursor()
    t = threading.Timer(0.5, c.cancel)
    t.start()
    with pytest.raises(psycopg2.extensions.QueryCanceledError):
        cur.execute("SELECT pg_sleep(10)")
    t.join()
    c.cancel()  # nothing running now
    cur.execute("SELECT 1")
    c.close()
    mt = wait_until(lambda: (lambda x: x if val(x, "pgmux_cancel_requests_total",
                                                 result="idle") == 1 else None)(scrape(m)),
                    5, msg="idle cancel counted")
    assert val(mt, "pgmux_cancel_requests_total", result="forwarded") == 1
    assert pool_val(mt, "pgmux_errors_total", DBNAME, "testuser", source="server",
                    sqlstate_class="57") == 1


def test_reload_counters(pgmux_factory):
    m = obs_pgmux(pgmux_factory)
    before = val(scrape(m), "pgmux_config_last_reload_success_timestamp_seconds")
    assert abs(before - time.time()) < 600
    time.sleep(1.1)
    m.mark_log()
    m.reload()
    m.wait_log("configuration reloaded")
    mt = scrape(m)
    assert val(mt, "pgmux_config_reloads_total", result="success") == 1
    assert val(mt, "pgmux_config_last_reload_success_timestamp_seconds") > before
    assert val(mt, "pgmux_config_last_reload_successful") == 1

    m.settings["default_pool_size"] = "not a number"
    m.write_config()
    m.mark_log()
    m.reload()
    m.wait_log("reload failed")
    mt = scrape(m)
    assert val(mt, "pgmux_config_reloads_total", result="failure") == 1
    assert val(mt, "pgmux_config_last_reload_successful") == 0


def test_stats_auth(pgmux_factory):
    userlist = {"testuser": "testpass", "md5user": "md5pass", "scramuser": "scrampass",
                "prom_plain": "plainpw", "prom_md5": md5_secret("prom_md5", "md5pw"),
                "prom_scram": scram_secret("scrampw", iterations=4096)}
    m = obs_pgmux(pgmux_factory, userlist=userlist,
                  settings={"stats_auth": "prom_plain, prom_md5,prom_scram"})

    def get(user=None, pw=None):
        h = {}
        if user is not None:
            h["Authorization"] = "Basic " + base64.b64encode(
                ("%s:%s" % (user, pw)).encode()).decode()
        return http_get(m.stats_port, "/metrics", headers=h)

    status, headers, _ = get()
    assert status == 401 and "basic" in headers["www-authenticate"].lower()
    assert get("prom_plain", "nope")[0] == 401
    assert get("testuser", "testpass")[0] == 401, "not listed in stats_auth"
    assert get("prom_plain", "plainpw")[0] == 200
    assert get("prom_md5", "md5pw")[0] == 200
    assert get("prom_md5", "md5pwx")[0] == 401
    assert get("prom_scram", "scrampw")[0] == 200
    assert get("prom_scram", "scrampw")[0] == 200   # cached now
    time.sleep(0.3)
    assert get("prom_scram", "wrong")[0] == 401
    # health endpoints stay open
    assert http_get(m.stats_port, "/health/live")[0] == 200


def test_stats_allow(pgmux_factory):
    m = obs_pgmux(pgmux_factory, settings={"stats_allow": "10.0.0.0/8, ::1"})
    assert http_get(m.stats_port, "/metrics")[0] == 403
    assert http_get(m.stats_port, "/health/ready")[0] == 200
    m.settings["stats_allow"] = "10.0.0.0/8,127.0.0.0/8"
    m.write_config()
    m.mark_log()
    m.reload()
    m.wait_log("configuration reloaded")
    assert http_get(m.stats_port, "/metrics")[0] == 200


def test_bad_stats_allow_is_a_config_error(pgmux_factory):
    m = pgmux_factory(settings={"stats_allow": "127.0.0.1/40"}, start=False)
    r = m.run_foreground()
    assert r.returncode != 0
    assert "stats_allow" in r.stdout + r.stderr


def test_metrics_off_by_default(pgmux):
    """Without stats/health ports nothing listens and the pooler works as before."""
    assert pgmux.psql("SELECT 1") == "1"


def test_contrib_prometheus_and_grafana(pgmux_factory):
    """contrib/: promtool accepts the alert rules and scrape config, the dashboard is JSON,
    and every metric they name exists in a real scrape."""
    promtool = ensure_promtool()
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "contrib")
    rules = os.path.join(root, "prometheus", "pgmux-alerts.yml")
    config = os.path.join(root, "prometheus", "prometheus.yml")
    dashboard = os.path.join(root, "grafana", "pgmux-dashboard.json")
    for args in (["check", "rules", rules], ["check", "config", config]):
        r = subprocess.run([promtool] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stdout
    import json
    with open(dashboard) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    with open(rules) as f:
        text = f.read() + "\n".join(exprs)
    m = obs_pgmux(pgmux_factory)
    workload(m, "transaction")
    names = {k[0] for k in scrape(m)}
    used = set(re.findall(r"\b((?:pgmux|process)_[a-z_]+)\b", text))
    assert used, "no metric names found"
    missing = sorted(n for n in used if n not in names)
    assert not missing, "metrics named in contrib/ but not exported: %s" % missing
