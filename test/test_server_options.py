"""Server-side options of [databases] / [users] / [pgbouncer]: connect_query,
server_reset_query (+ _always), server_check_query/server_check_delay, Unix-socket and
host-name servers, the `*` fallback, per-database startup parameters, per-user pool_mode,
forced users."""

import re
import subprocess
import threading
import time

import psycopg2
import pytest

from pgmux_helpers import DBNAME, PgError, wait_until


@pytest.fixture
def log_table(pg):
    pg.sql("DROP TABLE IF EXISTS opt_log; CREATE TABLE opt_log (what text, pid int, "
           "at timestamptz DEFAULT now()); GRANT ALL ON opt_log TO PUBLIC", dbname=DBNAME)
    yield "opt_log"
    pg.sql("DROP TABLE IF EXISTS opt_log", dbname=DBNAME)


def _count(pg, what):
    return pg.scalar("SELECT count(*) FROM opt_log WHERE what = %s", [what], dbname=DBNAME)


def test_connect_query_runs_once_per_server(pgmux_factory, pg, log_table):
    m = pgmux_factory(settings={"default_pool_size": 2}, databases={
        DBNAME: "host=127.0.0.1 port=%d dbname=p0 connect_query='INSERT INTO opt_log "
                "VALUES (''connect'', pg_backend_pid())'" % pg.port})
    c = m.connect(autocommit=True)
    cur = c.cursor()
    for _ in range(10):
        cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    c.close()
    rows = pg.sql("SELECT pid FROM opt_log WHERE what = 'connect'", dbname=DBNAME)
    assert rows and rows[0][0] == pid
    assert len(rows) == 1, "connect_query must run once per new server, ran %d times" % len(rows)


def test_server_reset_query_session_mode(pgmux_factory, pg, log_table):
    """In session mode the reset query runs when a client leaves (once per client)."""
    m = pgmux_factory(pool_mode="session", settings={
        "default_pool_size": 1,
        "server_reset_query": "INSERT INTO opt_log VALUES ('reset', pg_backend_pid())"})
    for i in range(3):
        c = m.connect(autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT %s::int", (i,))
        assert cur.fetchone() == (i,)
        c.close()
        wait_until(lambda: _count(pg, "reset") == i + 1, 5, msg="reset query %d" % (i + 1))


def test_server_reset_query_not_in_transaction_mode(pgmux_factory, pg, log_table):
    m = pgmux_factory(pool_mode="transaction", settings={
        "default_pool_size": 1,
        "server_reset_query": "INSERT INTO opt_log VALUES ('reset', pg_backend_pid())"})
    for i in range(3):
        c = m.connect(autocommit=True)
        c.cursor().execute("SELECT 1")
        c.close()
    time.sleep(0.5)
    assert _count(pg, "reset") == 0


def test_server_reset_query_always(pgmux_factory, pg, log_table):
    m = pgmux_factory(pool_mode="transaction", settings={
        "default_pool_size": 1, "server_reset_query_always": 1,
        "server_reset_query": "INSERT INTO opt_log VALUES ('reset', pg_backend_pid())"})
    c = m.connect(autocommit=True)
    for _ in range(3):
        c.cursor().execute("SELECT 1")
    c.close()
    wait_until(lambda: _count(pg, "reset") >= 3, 5, msg="reset after each transaction")


def test_server_check_query(pgmux_factory, pg, log_table):
    """server_check_delay=0: an idle server is checked with server_check_query before it is
    handed to the next transaction."""
    m = pgmux_factory(settings={
        "default_pool_size": 1, "server_check_delay": 0,
        "server_check_query": "INSERT INTO opt_log VALUES ('check', pg_backend_pid())"})
    c = m.connect(autocommit=True)
    cur = c.cursor()
    for _ in range(4):
        cur.execute("SELECT 1")
        time.sleep(0.3)
    c.close()
    assert _count(pg, "check") >= 1


def test_server_check_delay_long(pgmux_factory, pg, log_table):
    m = pgmux_factory(settings={
        "default_pool_size": 1, "server_check_delay": 3600,
        "server_check_query": "INSERT INTO opt_log VALUES ('check', pg_backend_pid())"})
    c = m.connect(autocommit=True)
    for _ in range(4):
        c.cursor().execute("SELECT 1")
    c.close()
    assert _count(pg, "check") == 0


def test_server_over_unix_socket(pgmux_factory, pg):
    m = pgmux_factory(databases={DBNAME: "host=%s port=%d dbname=p0" % (pg.sockdir, pg.port)})
    c = m.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT client_addr IS NULL, current_database() FROM pg_stat_activity "
                "WHERE pid = pg_backend_pid()")
    assert cur.fetchone() == (True, "p0"), "server connection should use the Unix socket"
    c.close()


def test_server_by_host_name(pgmux_factory, pg):
    """host=localhost: resolved (without blocking the loop) and connected."""
    m = pgmux_factory(databases={DBNAME: "host=localhost port=%d dbname=p0" % pg.port})

    def ok():
        c = m.connect(autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT 'resolved'")
        v = cur.fetchone()
        c.close()
        return v == ("resolved",)

    wait_until(ok, 5)


def test_fallback_database(pgmux_factory, pg):
    m = pgmux_factory(databases={"*": "host=127.0.0.1 port=%d" % pg.port})
    for db in ("p0", "postgres"):
        c = m.connect(dbname=db, autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT current_database()")
        assert cur.fetchone() == (db,)
        c.close()
    with pytest.raises(psycopg2.OperationalError):
        c = m.connect(dbname="db_that_does_not_exist_anywhere")
        c.cursor().execute("SELECT 1")


def test_failed_logins_to_fallback_names_leave_nothing(pgmux_factory, pg):
    """With `*`, every database name in a startup packet makes a database entry for the
    login. Logins that fail (here: a wrong password, before any server connection) must not
    leave their entries behind, or anyone could grow pgmux without bound; a successful
    login keeps its entry."""
    m = pgmux_factory(databases={"*": "host=127.0.0.1 port=%d" % pg.port},
                      settings={"admin_users": "testuser"})

    def databases():
        out = m.psql("SHOW DATABASES", dbname="pgbouncer")
        return sorted(line.split("|")[0] for line in out.splitlines())
    before = databases()
    for i in range(40):
        r = m.raw()
        with pytest.raises(PgError):
            r.login(password="wrong", database="junk_%d" % i)
        r.close()
    assert m.psql("SELECT current_database()", dbname="postgres") == "postgres"
    wait_until(lambda: databases() == sorted(set(before) | {"postgres"}), 5)
    assert m.alive()


def test_database_alias(pgmux_factory, pg):
    m = pgmux_factory(databases={"alias1": "host=127.0.0.1 port=%d dbname=p0" % pg.port})
    c = m.connect(dbname="alias1", autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT current_database()")
    assert cur.fetchone() == ("p0",)
    c.close()


def test_database_timezone_and_datestyle(pgmux_factory, pg):
    """timezone= and datestyle= in the connection string are the defaults clients see; a
    client's own setting still wins. (Raw clients: psycopg2 forces DateStyle ISO.)"""
    m = pgmux_factory(settings={"default_pool_size": 1}, databases={
        DBNAME: "host=127.0.0.1 port=%d dbname=p0 timezone=Asia/Tokyo datestyle='SQL, DMY'"
                % pg.port})
    a = m.raw()
    a.login()
    q = "SELECT current_setting('TimeZone'), current_setting('DateStyle')"
    assert a.query(q) == [("Asia/Tokyo", "SQL, DMY")]
    b = m.raw()
    b.login()
    b.query("SET TimeZone = 'UTC'")
    assert a.query("SHOW TimeZone") == [("Asia/Tokyo",)]
    assert b.query("SHOW TimeZone") == [("UTC",)]
    a.close()
    b.close()


def test_user_pool_mode(pgmux_factory, pg):
    """[users] md5user pool_mode=session overrides the global transaction mode."""
    m = pgmux_factory(pool_mode="transaction",
                      settings={"default_pool_size": 1, "query_wait_timeout": 1},
                      users={"md5user": "pool_mode=session"})
    # testuser: transaction mode, two clients share the one server
    a = m.connect(autocommit=True)
    b = m.connect(autocommit=True)
    for c in (a, b, a, b):
        c.cursor().execute("SELECT 1")
    a.close()
    b.close()
    # md5user: session mode, the first client keeps the server
    a = m.connect(user="md5user", autocommit=True)
    a.cursor().execute("SELECT 1")
    b = m.connect(user="md5user", autocommit=True)
    with pytest.raises(psycopg2.OperationalError):
        b.cursor().execute("SELECT 1")
    a.close()


def test_forced_user(pgmux_factory, pg):
    """A [databases] entry with user=/password=: every client runs as that user, in one pool."""
    m = pgmux_factory(settings={"default_pool_size": 1}, databases={
        "forced": "host=127.0.0.1 port=%d dbname=p0 user=scramuser password=scrampass"
                  % pg.port})
    seen = set()
    for u in ("testuser", "md5user"):
        c = m.connect(dbname="forced", user=u, autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT current_user, pg_backend_pid()")
        user, pid = cur.fetchone()
        assert user == "scramuser"
        seen.add(pid)
        c.close()
    assert len(seen) == 1, "a forced user means one pool for all clients"


def test_two_databases_concurrently(pgmux_factory, pg):
    """Many clients on two databases at once: each gets its own database's answers."""
    m = pgmux_factory(settings={"default_pool_size": 2})
    errors = []

    def work(i):
        db = "p0" if i % 2 else "postgres"
        try:
            c = m.connect(dbname=db, autocommit=True)
            cur = c.cursor()
            for _ in range(10):
                cur.execute("SELECT current_database()")
                if cur.fetchone()[0] != db:
                    errors.append((i, "wrong db"))
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append((i, repr(e)))

    ts = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert errors == []


def _keepalive_timers(port, side):
    """Seconds left on the keepalive timers of established TCP sockets whose local (side
    "sport") or remote ("dport") port is port, as ss shows them."""
    out = subprocess.run(["ss", "-tnoH", "state", "established", "( %s = :%d )" % (side, port)],
                         stdout=subprocess.PIPE, text=True, timeout=10).stdout
    return [float(m) for m in re.findall(r"timer:\(keepalive,([0-9.]+)(?:ms|sec)", out)]


def test_tcp_keepalive_settings_apply_to_both_sides(pgmux_factory, pg):
    """tcp_keepidle (and keepalive itself) reach pgmux's client and server sockets: the kernel
    shows a keepalive timer of at most tcp_keepidle seconds on each."""
    m = pgmux_factory(pool_mode="session", settings={"tcp_keepidle": 7, "tcp_keepintvl": 3,
                                                     "tcp_keepcnt": 2,
                                                     "tcp_user_timeout": 20000})
    c = m.connect(autocommit=True)
    c.cursor().execute("SELECT 1")  # session mode: the server stays linked
    time.sleep(1.0)  # no data in flight: ss shows the keepalive timer, not a retransmit one
    client_side = _keepalive_timers(m.port, "sport")
    server_side = _keepalive_timers(pg.port, "dport")
    assert client_side and all(t <= 7 for t in client_side), client_side
    assert server_side and all(t <= 7 for t in server_side), server_side
    c.close()


def test_application_name_add_host(pgmux_factory, pg):
    """application_name_add_host: PostgreSQL sees "<name> - <address>:<port>" ("app" when the
    client sent none), as with PgBouncer."""
    m = pgmux_factory(settings={"application_name_add_host": 1})
    for sent, want in (("myapp", "myapp - 127.0.0.1:"), (None, "app - 127.0.0.1:")):
        kw = {"application_name": sent} if sent else {}
        c = m.connect(autocommit=True, **kw)
        cur = c.cursor()
        cur.execute("SELECT current_setting('application_name')")
        got = cur.fetchone()[0]
        assert got.startswith(want) and got[len(want):].isdigit(), got
        c.close()
