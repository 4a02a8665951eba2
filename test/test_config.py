"""Configuration: errors name file, line and key; %include; keys of later features are
accepted; reload on SIGHUP applies changes, and a bad reload keeps the old config; the CLI."""

import os
import re
import signal
import subprocess
import threading
import time

import psycopg2
import pytest

from pgmux_helpers import DBNAME, RUN_AS, port_open, wait_until


def _line_of(path, needle):
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if needle in line:
                return i
    raise AssertionError("%r not in %s" % (needle, path))


def _assert_names_file_line(text, path, line):
    base = os.path.basename(path)
    assert re.search(r"(%s|%s)\D{0,3}%d\b" % (re.escape(path), re.escape(base), line), text) or \
        (base in text and re.search(r"\bline\D{0,3}%d\b" % line, text)), \
        "expected %s and line %d in:\n%s" % (base, line, text)


@pytest.mark.parametrize("bad,key", [
    ("bogus_key_xyz = 1", "bogus_key_xyz"),
    ("default_pool_size = abc", "default_pool_size"),
    ("pool_mode = sometimes", "pool_mode"),
    ("query_timeout = soon", "query_timeout"),
    ("listen_port = 99999999", "listen_port"),
    # names go unquoted into SET: anything but an identifier (with dots) is refused
    ("track_extra_parameters = search_path, a=b", "track_extra_parameters"),
    ("track_extra_parameters = x'; DROP TABLE t; --", "track_extra_parameters"),
])
def test_bad_config_line(pgmux_factory, bad, key):
    m = pgmux_factory(start=False, extra_ini="; a comment before the bad line\n" + bad)
    m.write_config()
    line = _line_of(m.ini, bad)
    r = m.run_foreground()
    assert r.returncode != 0, "pgmux accepted %r" % bad
    _assert_names_file_line(r.stderr, m.ini, line)
    assert key in r.stderr
    assert not port_open(m.port)


def test_bad_line_syntax(pgmux_factory):
    m = pgmux_factory(start=False, extra_ini="this line has no equals sign")
    line = _line_of(m.ini, "this line has no equals sign")
    r = m.run_foreground()
    assert r.returncode != 0
    _assert_names_file_line(r.stderr, m.ini, line)


def test_bad_database_connstr(pgmux_factory, pg):
    m = pgmux_factory(start=False, databases={
        DBNAME: "host=127.0.0.1 port=%d dbname=p0" % pg.port,
        "broken": "host=127.0.0.1 port=%d nosuchkey=1" % pg.port})
    line = _line_of(m.ini, "nosuchkey")
    r = m.run_foreground()
    # PgBouncer logs a bad [databases] entry and goes on without it; pgmux may refuse to
    # start. Either way the file and line must be named.
    if r.returncode == 0:
        pytest.fail("foreground run exited 0 without serving")
    _assert_names_file_line(r.stderr + r.stdout, m.ini, line)


def test_missing_config_file(pgmux_factory):
    m = pgmux_factory(start=False)
    os.unlink(m.ini)
    r = m.run_foreground()
    assert r.returncode != 0
    assert "pgmux.ini" in r.stderr


def test_include(pgmux_factory, pg):
    """%include pulls in another file; its [databases] entries and settings apply, and a
    setting after the include overrides it."""
    m = pgmux_factory(start=False)
    inc = os.path.join(m.dir, "included.ini")
    m.write_file(inc, "[databases]\nincdb = host=127.0.0.1 port=%d dbname=p0\n"
                 "[pgbouncer]\ndefault_pool_size = 1\nquery_wait_timeout = 77\n" % pg.port)
    m.extra_ini = "%%include %s\n[pgbouncer]\nquery_wait_timeout = 1\n" % inc
    m.write_config()
    m.start()
    c = m.connect(dbname="incdb", autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT current_database()")
    assert cur.fetchone() == ("p0",)
    # pool size 1 from the include, query_wait_timeout 1 from after it: a second client
    # waiting behind a long query times out quickly
    holder = m.connect(dbname="incdb", autocommit=True)
    t = threading.Thread(target=lambda: holder.cursor().execute("SELECT pg_sleep(3)"))
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    with pytest.raises(psycopg2.OperationalError):
        cur.execute("SELECT 1")
    assert time.monotonic() - t0 < 2.5
    t.join(10)
    c.close()
    holder.close()


def test_include_missing_file(pgmux_factory):
    m = pgmux_factory(start=False, extra_ini="%include /nonexistent/dir/nothere.ini")
    r = m.run_foreground()
    assert r.returncode != 0
    assert "nothere.ini" in r.stderr


def test_include_error_names_included_file(pgmux_factory):
    m = pgmux_factory(start=False)
    inc = os.path.join(m.dir, "inc_bad.ini")
    m.write_file(inc, "[pgbouncer]\n; comment\n\nnot_a_real_key = 3\n")
    m.extra_ini = "%%include %s\n" % inc
    m.write_config()
    r = m.run_foreground()
    assert r.returncode != 0
    _assert_names_file_line(r.stderr, inc, 4)


def test_pgbouncer_ini_keys_of_later_features_accepted(pgmux_factory):
    """A PgBouncer config with TLS, admin and stats keys starts (they are parsed and stored)."""
    m = pgmux_factory(settings={
        "admin_users": "postgres",
        "stats_users": "testuser",
        "client_tls_sslmode": "disable",
        "server_tls_sslmode": "disable",
        "stats_period": "60",
        "max_prepared_statements": "0",
        "server_reset_query": "DISCARD ALL",
        "server_reset_query_always": "0",
        "server_check_query": "select 1",
        "server_check_delay": "30",
        "tcp_keepalive": "1",
        "pkt_buf": "4096",
        "sbuf_loopcnt": "5",
        "dns_max_ttl": "15",
        "application_name_add_host": "0",
        "track_extra_parameters": "IntervalStyle",
        "verbose": "0",
        "syslog": "0",
    }, extra_ini="; semicolon comment\n# hash comment\n")
    c = m.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    c.close()


def _overlap_backends(m, pg, n, sleep=1.0):
    """Run n parallel sleeps; return (max backends seen, elapsed)."""
    seen = [0]
    stop = threading.Event()

    def mon():
        while not stop.is_set():
            seen[0] = max(seen[0], pg.count_backends(["testuser"], state="active"))
            time.sleep(0.03)

    conns = [m.connect(autocommit=True) for _ in range(n)]
    mt = threading.Thread(target=mon)
    mt.start()
    ts = [threading.Thread(target=lambda c=c: c.cursor().execute("SELECT pg_sleep(%s)", (sleep,)))
          for c in conns]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    took = time.monotonic() - t0
    stop.set()
    mt.join(5)
    for c in conns:
        c.close()
    return seen[0], took


def test_reload_default_pool_size(pgmux_factory, pg):
    m = pgmux_factory(settings={"default_pool_size": 1})
    seen, took = _overlap_backends(m, pg, 3)
    assert seen == 1 and took >= 2.8
    m.settings["default_pool_size"] = "3"
    m.write_config()
    m.mark_log()
    m.reload()
    time.sleep(1.0)
    seen, took = _overlap_backends(m, pg, 3)
    assert seen == 3, "after reload to pool size 3, PostgreSQL saw %d active servers" % seen
    assert took < 2.0
    assert m.alive()


def test_reload_database_pool_mode(pgmux_factory, pg):
    """[databases] p0 goes from pool_mode=session to transaction with a SIGHUP."""
    db = "host=127.0.0.1 port=%d dbname=p0 pool_mode=%%s pool_size=1" % pg.port
    m = pgmux_factory(settings={"query_wait_timeout": 1}, databases={DBNAME: db % "session"})
    a = m.connect(autocommit=True)
    a.cursor().execute("SELECT 1")
    # session mode: a holds the only server while connected, b cannot get it
    b = m.connect(autocommit=True)
    with pytest.raises(psycopg2.OperationalError):
        b.cursor().execute("SELECT 1")
    a.close()
    b.close()
    m.databases[DBNAME] = db % "transaction"
    m.write_config()
    m.reload()
    time.sleep(1.0)

    def both_work():
        a = m.connect(autocommit=True)
        b = m.connect(autocommit=True)
        try:
            for _ in range(3):
                for c in (a, b):
                    cur = c.cursor()
                    cur.execute("SELECT 2")
                    assert cur.fetchone() == (2,)
            return True
        finally:
            a.close()
            b.close()

    assert wait_until(both_work, 5)


@pytest.mark.parametrize("bad", ["not_a_key_at_all = 5", "this line is broken",
                                 "default_pool_size = lots"])
def test_bad_reload_keeps_old_config(pgmux_factory, pg, bad):
    m = pgmux_factory(settings={"default_pool_size": 1})
    c = m.connect(autocommit=True)
    c.cursor().execute("SELECT 1")
    good = m.render_ini()
    with open(m.ini, "w") as f:
        f.write(good.replace("default_pool_size = 1", "default_pool_size = 4\n" + bad))
    line = _line_of(m.ini, bad)
    m.mark_log()
    m.reload()
    m.wait_log(r"%s\D{0,3}%d\b" % (re.escape(os.path.basename(m.ini)), line), 5)
    time.sleep(0.3)
    assert m.alive(), "a bad reload must not stop pgmux"
    _assert_names_file_line(m.new_log(), m.ini, line)
    # still the old config: pool size 1
    seen, took = _overlap_backends(m, pg, 2)
    assert seen == 1 and took >= 1.8, "bad reload changed the pool size (seen %d)" % seen
    # the existing client is fine
    cur = c.cursor()
    cur.execute("SELECT 3")
    assert cur.fetchone() == (3,)
    c.close()
    # a good reload afterwards applies
    m.settings["default_pool_size"] = "2"
    m.write_config()
    m.reload()
    time.sleep(1.0)
    seen, took = _overlap_backends(m, pg, 2)
    assert seen == 2


def test_reload_add_database(pgmux_factory, pg):
    m = pgmux_factory()
    with pytest.raises(psycopg2.OperationalError):
        m.connect(dbname="newdb")
    m.databases["newdb"] = "host=127.0.0.1 port=%d dbname=postgres" % pg.port
    m.write_config()
    m.reload()

    def ok():
        c = m.connect(dbname="newdb", autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT current_database()")
        v = cur.fetchone()
        c.close()
        return v == ("postgres",)

    wait_until(ok, 5)


def test_reload_explicit_entry_replaces_autodb(pgmux_factory, pg):
    """A database first made from `*` follows its own [databases] entry once a reload adds
    one (PgBouncer's behaviour), instead of keeping the `*` settings for good."""
    m = pgmux_factory(databases={"*": "host=127.0.0.1 port=%d" % pg.port})
    assert m.psql("SELECT current_database()", dbname="postgres") == "postgres"
    m.databases["postgres"] = "host=127.0.0.1 port=%d dbname=%s" % (pg.port, DBNAME)
    m.write_config()
    m.reload()
    wait_until(lambda: m.psql("SELECT current_database()", dbname="postgres") == DBNAME, 10)


def test_reload_removed_database_ends_its_clients(pgmux_factory, pg):
    """A reload removes a database: a client waiting for a server is told at once, an idle
    client is told at its next query, a transaction in progress still commits."""
    m = pgmux_factory(settings={"default_pool_size": 1, "query_wait_timeout": 60})
    busy = m.connect(autocommit=False)
    cur = busy.cursor()
    cur.execute("SELECT 1")  # holds the only server in a transaction
    idle = m.connect(autocommit=True)
    r = m.raw()
    r.login()
    r.send(r.msg(b"Q", b"SELECT 2\0"))  # waits for the server
    time.sleep(0.3)
    del m.databases[DBNAME]
    m.write_config()
    t0 = time.monotonic()
    m.reload()
    msgs, how = r.collect(timeout=10)
    r.close()
    # the FATAL may be lost to a reset: the client's unanswered Query was still buffered
    assert how in ("closed", "stop") and time.monotonic() - t0 < 5, (msgs, how)
    m.wait_log(r"pooler error: database removed", since_mark=False)
    cur.execute("SELECT 3")
    assert cur.fetchone() == (3,)
    busy.commit()
    m.mark_log()
    with pytest.raises(psycopg2.OperationalError):
        idle.cursor().execute("SELECT 4")
    m.wait_log(r"pooler error: database removed")
    assert m.alive()


# --- CLI


def test_cli_version_and_help(pgmux_factory):
    m = pgmux_factory(start=False)
    r = subprocess.run([m.binary, "-V"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.strip()
    r = subprocess.run([m.binary, "-h"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=10)
    assert r.returncode == 0
    assert "-u" in r.stdout and "-d" in r.stdout


def test_refuses_root_without_u(pgmux_factory):
    m = pgmux_factory(start=False)
    p = subprocess.Popen([m.binary, m.ini], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=m.env(), cwd=m.dir)
    try:
        out, err = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("pgmux ran as root without -u")
    assert p.returncode != 0
    assert "root" in (out + err).lower()


def test_daemon_mode(pgmux_factory):
    m = pgmux_factory(start=False)
    pidfile = os.path.join(m.dir, "pgmux.pid")
    logfile = os.path.join(m.dir, "daemon.log")
    m.settings["pidfile"] = pidfile
    m.settings["logfile"] = logfile
    m.write_config()
    r = subprocess.run([m.binary, "-d", "-u", RUN_AS, m.ini], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=10, env=m.env(), cwd=m.dir)
    assert r.returncode == 0, r.stdout
    pid = int(wait_until(lambda: open(pidfile).read().strip(), 5))
    try:
        wait_until(lambda: port_open(m.port), 5)
        c = m.connect(autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT 'daemon'")
        assert cur.fetchone() == ("daemon",)
        c.close()
        assert os.path.getsize(logfile) > 0
    finally:
        os.kill(pid, signal.SIGQUIT)
        try:
            wait_until(lambda: not os.path.exists("/proc/%d" % pid), 10)
        except AssertionError:
            os.kill(pid, signal.SIGKILL)
    with open(logfile, errors="replace") as f:
        txt = f.read()
    assert "Sanitizer" not in txt and "runtime error:" not in txt, txt


def test_quiet_flag(pgmux_factory):
    """-q: nothing is logged to stderr (no logfile set), and pgmux works."""
    m = pgmux_factory(start=False)
    m.start(args=["-q"])
    c = m.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT 'quiet'")
    assert cur.fetchone() == ("quiet",)
    c.close()
    time.sleep(0.2)
    assert m.log().strip() == "", m.log()


def test_verbose_flag(pgmux_factory):
    """-v: more logging than the default (debug lines appear for a client session)."""
    quiet = pgmux_factory(settings={"log_connections": 0, "log_disconnections": 0})
    loud = pgmux_factory(settings={"log_connections": 0, "log_disconnections": 0}, start=False)
    loud.start(args=["-v", "-v"])
    for m in (quiet, loud):
        c = m.connect(autocommit=True)
        c.cursor().execute("SELECT 1")
        c.close()
    time.sleep(0.3)
    assert len(loud.log().splitlines()) > len(quiet.log().splitlines())
