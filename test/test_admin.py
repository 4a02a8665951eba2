"""Admin console (issue 5): the virtual database "pgbouncer" with PgBouncer's SHOW columns and
process-control commands, over the simple protocol (psycopg2, psql, a raw socket) and the
extended protocol (psycopg 3, a raw socket), plus the Debian prometheus-pgbouncer-exporter.

Column lists and types are compared with test/fixtures/show_columns.json (taken from
PGBOUNCER.md section 2.2). Values are checked against what each test did.
"""

import concurrent.futures
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import urllib.request

import psycopg2
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from pgmux_helpers import (  # noqa: E402
    DBNAME, PSQL, RUN_AS, PgError, RawClient, default_userlist, free_port, pid_alive, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "fixtures", "show_columns.json")) as _f:
    SHOW = {k: v for k, v in json.load(_f).items() if not k.startswith("_")}

ADMIN, ADMIN_PW = "pgadmin", "adminpass"
STATS, STATS_PW = "pgstats", "statspass"

# RowDescription type letters (PgBouncer's) -> PostgreSQL type OIDs.
TYPE_OID = {"s": 25, "T": 25, "i": 23, "q": 20, "N": 1700, "b": 17}


# ---------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def adm_factory(pgmux_factory):
    """pgmux with admin_users = pgadmin and stats_users = pgstats (both in the userlist)."""
    def make(settings=None, **kw):
        s = {"admin_users": ADMIN, "stats_users": STATS}
        s.update(settings or {})
        ul = default_userlist()
        ul.update({ADMIN: ADMIN_PW, STATS: STATS_PW})
        return pgmux_factory(settings=s, userlist=ul, **kw)
    return make


@pytest.fixture
def mux(adm_factory):
    return adm_factory()


def admin_connect(m, user=ADMIN, password=None, dbname="pgbouncer", **kw):
    password = password if password is not None else {ADMIN: ADMIN_PW, STATS: STATS_PW}[user]
    kw.setdefault("connect_timeout", 10)
    c = psycopg2.connect(host="127.0.0.1", port=m.port, dbname=dbname, user=user,
                         password=password, **kw)
    c.autocommit = True
    return c


def run(conn, sql):
    """Execute on an admin connection; return (column names, rows)."""
    with conn.cursor() as cur:
        cur.execute(sql)
        if cur.description is None:
            return None, None
        return [d.name for d in cur.description], cur.fetchall()


def rows_as_dicts(conn, sql):
    cols, rows = run(conn, sql)
    return [dict(zip(cols, r)) for r in rows]


def pool_row(conn, db=DBNAME, user="testuser"):
    for r in rows_as_dicts(conn, "SHOW POOLS"):
        if r["database"] == db and r["user"] == user:
            return r
    return None


def db_row(conn, name):
    for r in rows_as_dicts(conn, "SHOW DATABASES"):
        if r["name"] == name:
            return r
    return None


def config_value(conn, key):
    for r in rows_as_dicts(conn, "SHOW CONFIG"):
        if r["key"] == key:
            return r
    raise KeyError(key)


def state(conn):
    return dict(run(conn, "SHOW STATE")[1])


def admin_error(conn, sql):
    """Run sql, expect an ErrorResponse; return its message (the connection must survive)."""
    with pytest.raises(psycopg2.Error) as ei:
        run(conn, sql)
    assert conn.closed == 0, "admin connection dropped after %r" % sql
    return ei.value.diag.message_primary or str(ei.value)


def query_in_thread(conn, sql="SELECT 1"):
    """Run sql on conn in a worker thread; return the future (its result is the first row)."""
    ex = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    def work():
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone() if cur.description else None
    fut = ex.submit(work)
    ex.shutdown(wait=False)
    return fut


def still_blocked(fut, secs=0.7):
    time.sleep(secs)
    return not fut.done()


def backend_pid(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


def raw_admin(m, user=ADMIN, password=ADMIN_PW):
    r = m.raw()
    r.login(user=user, password=password, database="pgbouncer")
    return r


def types_of(cursor_description):
    return [d.type_code for d in cursor_description]


# ---------------------------------------------------------------------------------------------
# columns, types and the welcome


@pytest.mark.parametrize("cmd", sorted(k for k in SHOW if k != "HELP"))
def test_show_columns_match_pgbouncer(mux, cmd):
    c = mux.connect(autocommit=True)
    c.cursor().execute("SELECT 1")
    a = admin_connect(mux)
    with a.cursor() as cur:
        cur.execute("SHOW " + cmd)
        assert [d.name for d in cur.description] == SHOW[cmd]["columns"]
        assert types_of(cur.description) == [TYPE_OID[t] for t in SHOW[cmd]["types"]]
        rows = cur.fetchall()
        assert cur.statusmessage == "SHOW"
    if "rows" in SHOW[cmd]:
        assert [r[0] for r in rows] == SHOW[cmd]["rows"]


def test_show_help_is_a_notice(mux):
    a = admin_connect(mux)
    with a.cursor() as cur:
        cur.execute("SHOW HELP")
        assert cur.description is None
        assert cur.statusmessage == "SHOW"
    text = "".join(a.notices)
    assert SHOW["HELP"]["notice"] in text
    for word in ("SHOW", "PAUSE", "RESUME", "KILL_CLIENT", "WAIT_CLOSE", "SHUTDOWN"):
        assert word in text


def test_version_and_welcome(mux):
    a = admin_connect(mux)
    assert run(a, "SHOW VERSION")[1][0][0].startswith("pgmux ")
    # A PostgreSQL-like version first, so drivers parse it (psycopg2/libpq: 160000).
    assert a.server_version >= 90000
    assert a.get_parameter_status("server_version").endswith(")")
    assert "pgmux" in a.get_parameter_status("server_version")
    assert a.get_parameter_status("client_encoding") == "UTF8"
    assert a.get_parameter_status("standard_conforming_strings") == "on"
    # The "pgmux" database name is an alias of the console.
    b = admin_connect(mux, dbname="pgmux")
    assert run(b, "SHOW VERSION")[1][0][0].startswith("pgmux ")


def test_psql_show_pools(mux):
    c = mux.connect(autocommit=True)
    c.cursor().execute("SELECT 1")
    out = mux.psql("SHOW POOLS", dbname="pgbouncer", user=ADMIN, password=ADMIN_PW,
                   extra_args=["-F", ","])
    lines = out.splitlines()
    assert any(ln.startswith("%s,testuser," % DBNAME) for ln in lines), out
    assert any(ln.startswith("pgbouncer,pgbouncer,") for ln in lines), out


# ---------------------------------------------------------------------------------------------
# values


def test_stats_pools_clients_servers_values(mux):
    c = mux.connect(autocommit=True, application_name="admin-test-app")
    pid = backend_pid(c)
    for _ in range(4):
        c.cursor().execute("SELECT 1")
    n_queries = 5
    a = admin_connect(mux)

    st = [r for r in rows_as_dicts(a, "SHOW STATS") if r["database"] == DBNAME][0]
    assert st["total_query_count"] == n_queries
    assert st["total_xact_count"] == n_queries  # transaction mode, autocommit
    assert st["total_server_assignment_count"] >= 1
    assert st["total_client_login_count"] == 1
    assert st["total_received"] > 0 and st["total_sent"] > 0
    assert st["total_query_time"] > 0
    tot = [r for r in rows_as_dicts(a, "SHOW STATS_TOTALS") if r["database"] == DBNAME][0]
    assert tot["query_count"] == n_queries and tot["xact_count"] == n_queries
    assert tot["bytes_received"] == st["total_received"]
    totals = dict(run(a, "SHOW TOTALS")[1])
    assert totals["total_query_count"] == n_queries
    assert totals["total_client_login_count"] == 1
    # The console's own database is listed, with zeros; a database without pools is not.
    assert [r["database"] for r in rows_as_dicts(a, "SHOW STATS")] == [DBNAME, "pgbouncer"]

    p = pool_row(a)
    assert (p["cl_active"], p["cl_waiting"], p["sv_active"], p["sv_idle"]) == (1, 0, 0, 1)
    assert p["pool_mode"] == "transaction"
    assert pool_row(a, "pgbouncer", "pgbouncer")["pool_mode"] == "statement"
    assert pool_row(a, "pgbouncer", "pgbouncer")["cl_active"] == 1

    servers = [r for r in rows_as_dicts(a, "SHOW SERVERS") if r["database"] == DBNAME]
    assert len(servers) == 1
    assert servers[0]["state"] == "idle" and servers[0]["type"] == "S"
    assert servers[0]["remote_pid"] == pid  # from the server's BackendKeyData
    assert servers[0]["port"] == mux.pg.port

    clients = rows_as_dicts(a, "SHOW CLIENTS")
    mine = [r for r in clients if r["database"] == DBNAME]
    assert len(mine) == 1
    assert mine[0]["state"] == "idle" and mine[0]["user"] == "testuser"
    assert mine[0]["application_name"] == "admin-test-app"
    assert mine[0]["addr"] == "127.0.0.1" and mine[0]["local_port"] == mux.port
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+$", mine[0]["connect_time"])
    console = [r for r in clients if r["database"] == "pgbouncer"]
    assert console and console[0]["user"] == ADMIN

    users = {r["name"]: r for r in rows_as_dicts(a, "SHOW USERS")}
    assert users["testuser"]["current_client_connections"] == 1
    assert users["testuser"]["current_connections"] == 1
    assert users["testuser"]["pool_size"] == ""  # no [users] setting: empty text
    assert users["testuser"]["pool_mode"] is None
    # auth file users are listed before their first login (md5user never logged in here)
    assert users["md5user"]["current_client_connections"] == 0
    assert users["md5user"]["current_connections"] == 0
    assert list(users) == sorted(users) and len(users) == len(set(users))

    d = db_row(a, DBNAME)
    assert (d["pool_size"], d["current_connections"], d["current_client_connections"]) == (5, 1, 1)
    assert d["host"] == "127.0.0.1" and d["port"] == mux.pg.port and d["database"] == DBNAME
    assert d["pool_mode"] is None and d["paused"] == 0 and d["disabled"] == 0
    adm = db_row(a, "pgbouncer")
    assert adm["force_user"] == "pgbouncer" and adm["pool_mode"] == "statement"
    assert adm["port"] == mux.port and adm["pool_size"] == 2

    lists = dict(run(a, "SHOW LISTS")[1])
    assert lists["databases"] == 3  # p0, postgres, pgbouncer
    assert lists["pools"] == 2
    assert lists["used_clients"] == 2  # our client and this console
    assert lists["used_servers"] == 1
    assert lists["login_clients"] == 0

    mem = {r["name"]: r for r in rows_as_dicts(a, "SHOW MEM")}
    assert mem["client_cache"]["used"] == 2
    assert mem["server_cache"]["used"] == 1
    assert "iobuf_cache" in mem

    socks = rows_as_dicts(a, "SHOW SOCKETS")
    assert {"cl_active", "sv_idle"} <= {r["state"] for r in socks}
    active = rows_as_dicts(a, "SHOW ACTIVE_SOCKETS")
    assert {r["id"] for r in active} <= {r["id"] for r in socks}


@pytest.mark.parametrize("auth_type", ["scram-sha-256", "any"])
def test_forced_user_db_shows_login_user(adm_factory, pg, auth_type):
    """A database with user= logs in to PostgreSQL as that user, but SHOW CLIENTS and the log
    name the user who logged in to pgmux, as PgBouncer does. Under auth_type=any the login
    name is never checked, so the forced user is named instead."""
    forced = "host=127.0.0.1 port=%d dbname=%s user=scramuser password=scrampass" % (pg.port,
                                                                                     DBNAME)
    m = adm_factory(settings={"auth_type": auth_type}, databases={"forced": forced})
    c = m.connect(dbname="forced", user="testuser", autocommit=True)
    with c.cursor() as cur:
        cur.execute("SELECT current_user")
        assert cur.fetchone()[0] == "scramuser"
    a = admin_connect(m)
    shown = "testuser" if auth_type != "any" else "scramuser"
    mine = [r for r in rows_as_dicts(a, "SHOW CLIENTS") if r["database"] == "forced"]
    assert [r["user"] for r in mine] == [shown]
    assert [r["user"] for r in rows_as_dicts(a, "SHOW SERVERS")
            if r["database"] == "forced"] == ["scramuser"]
    assert [r["user"] for r in rows_as_dicts(a, "SHOW POOLS")
            if r["database"] == "forced"] == ["scramuser"]
    fds = [r for r in rows_as_dicts(a, "SHOW FDS") if r["database"] == "forced"]
    assert sorted(r["user"] for r in fds) == sorted([shown, "scramuser"])
    m.wait_log(r"C-\d+: forced/%s@127\.0\.0\.1:\d+ login attempt" % shown, since_mark=False)
    c.close()


def test_set_of_auth_and_tls_keys_takes_effect(mux):
    """SET auth_file loads that file at once (as PgBouncer applies such keys); a SET whose
    files do not load (client TLS on without a key or certificate) fails, and the running
    value stays."""
    a = admin_connect(mux)
    other = os.path.join(mux.dir, "other_userlist.txt")
    ul = dict(mux.userlist)
    ul["testuser"] = "rotated-pw"
    mux.write_file(other, "".join('"%s" "%s"\n' % kv for kv in ul.items()))
    run(a, "SET auth_file = '%s'" % other)
    assert config_value(a, "auth_file")["value"] == other
    # pgmux checks clients against the new file (the server login uses it too, and fails)
    r = mux.raw()
    with pytest.raises(PgError) as ei:
        r.login("testuser", password="testpass")
    r.close()
    assert ei.value.sqlstate == "28P01"
    msg = admin_error(a, "SET client_tls_sslmode = 'require'")
    assert "SET failed: client_tls_sslmode: client TLS: " in msg, msg
    assert config_value(a, "client_tls_sslmode")["value"] == "disable"
    run(a, "SET auth_file = '%s'" % mux.userlist_path)
    assert mux.psql("SELECT 1") == "1"


def test_set_pool_size_then_cl_waiting_and_maxwait(mux):
    """SET changes behaviour and SHOW CONFIG shows it; cl_waiting while the pool is full."""
    a = admin_connect(mux)
    assert config_value(a, "default_pool_size")["value"] == "5"
    with a.cursor() as cur:
        cur.execute("SET default_pool_size = 1")
        assert cur.statusmessage == "SET default_pool_size=1"
    r = config_value(a, "default_pool_size")
    assert (r["value"], r["default"], r["changeable"]) == ("1", "20", "yes")

    holder = mux.connect()
    holder.cursor().execute("SELECT 1")  # in a transaction: holds the only server
    waiter = mux.connect(autocommit=True)
    fut = query_in_thread(waiter, "SELECT 42")
    wait_until(lambda: pool_row(a)["cl_waiting"] == 1, 5, msg="cl_waiting == 1")
    p = pool_row(a)
    assert p["sv_active"] == 1 and p["sv_idle"] == 0
    time.sleep(1.1)
    p = pool_row(a)
    assert p["maxwait"] >= 1
    states = {r["state"] for r in rows_as_dicts(a, "SHOW CLIENTS") if r["database"] == DBNAME}
    assert states == {"active", "waiting"}
    waiting = [r for r in rows_as_dicts(a, "SHOW CLIENTS") if r["state"] == "waiting"][0]
    assert waiting["wait"] >= 1
    holder.commit()
    assert fut.result(10) == (42,)
    wait_until(lambda: pool_row(a)["sv_idle"] == 1, 5, msg="sv_idle after release")
    assert pool_row(a)["cl_waiting"] == 0


def test_set_and_show_config(mux):
    a = admin_connect(mux)
    run(a, "SET query_timeout TO '1.5'")
    assert config_value(a, "query_timeout")["value"] == "1.5"
    run(a, "set server_reset_query = 'DISCARD ALL; SELECT ''x'''")
    assert config_value(a, "server_reset_query")["value"] == "DISCARD ALL; SELECT 'x'"
    run(a, 'SET "max_client_conn" = 150;')
    assert config_value(a, "max_client_conn")["value"] == "150"
    assert config_value(a, "listen_port")["changeable"] == "no"
    msg = admin_error(a, "SET listen_port = 1")
    assert "SET failed" in msg
    assert config_value(a, "listen_port")["value"] == str(mux.port)
    assert "SET failed" in admin_error(a, "SET no_such_key = 1")
    assert "SET failed" in admin_error(a, "SET default_pool_size = -3")
    assert "SET failed" in admin_error(a, "SET pool_mode = bogus")
    # Fake parameters for drivers.
    with a.cursor() as cur:
        cur.execute("SET client_encoding = 'UTF8'")
        assert cur.statusmessage == "SET"
    assert any("SET ignored" in n for n in a.notices)
    assert run(a, "SHOW client_encoding") == (["client_encoding"], [("UTF-8",)])
    assert run(a, "show DateStyle")[1] == [("ISO",)]
    assert run(a, "SELECT 1")[1] == [(1,)]
    # Everything in the key table is listed.
    keys = [r["key"] for r in rows_as_dicts(a, "SHOW CONFIG")]
    assert keys == sorted(keys) and "admin_users" in keys and "stats_users" in keys


# ---------------------------------------------------------------------------------------------
# process control


def test_pause_holds_queries_until_resume(mux):
    c = mux.connect(autocommit=True)
    c.cursor().execute("SELECT 1")
    a = admin_connect(mux)
    with a.cursor() as cur:
        cur.execute("PAUSE")
        assert cur.statusmessage == "PAUSE"
    # PAUSE answers once no server is left.
    assert [r for r in rows_as_dicts(a, "SHOW SERVERS")] == []
    assert state(a) == {"active": "no", "paused": "yes", "suspended": "no"}
    assert "already suspended/paused" in admin_error(a, "PAUSE")
    fut = query_in_thread(c, "SELECT 7")
    assert still_blocked(fut)
    wait_until(lambda: pool_row(a)["cl_waiting"] == 1, 5)
    assert mux.pg.count_backends() == 0
    run(a, "RESUME")
    assert fut.result(10) == (7,)
    assert state(a)["active"] == "yes"
    assert "not paused" in admin_error(a, "RESUME")


def test_pause_waits_for_running_transaction(mux):
    holder = mux.connect()
    holder.cursor().execute("SELECT 1")
    a = admin_connect(mux)
    fut = query_in_thread(a, "PAUSE")
    assert still_blocked(fut, 1.0)
    holder.commit()
    fut.result(10)
    b = admin_connect(mux)
    assert state(b)["paused"] == "yes"
    assert pool_row(b)["sv_active"] == 0 and pool_row(b)["sv_idle"] == 0
    run(b, "RESUME")
    holder.cursor().execute("SELECT 1")
    holder.commit()


def test_pause_and_resume_one_database(mux):
    c = mux.connect(autocommit=True)
    c.cursor().execute("SELECT 1")
    other = mux.connect(dbname="postgres", autocommit=True)
    a = admin_connect(mux)
    with a.cursor() as cur:
        cur.execute("PAUSE %s" % DBNAME)
        assert cur.statusmessage == "PAUSE"
    assert db_row(a, DBNAME)["paused"] == 1
    assert db_row(a, "postgres")["paused"] == 0
    other.cursor().execute("SELECT 1")  # another database is not paused
    fut = query_in_thread(c, "SELECT 3")
    assert still_blocked(fut)
    assert "cannot pause admin db" in admin_error(a, "PAUSE pgbouncer")
    assert "no such database: nosuch" in admin_error(a, "PAUSE nosuch")
    assert "database postgres is not paused" in admin_error(a, "RESUME postgres")
    run(a, 'RESUME "%s"' % DBNAME)
    assert fut.result(10) == (3,)
    assert db_row(a, DBNAME)["paused"] == 0


def test_kill_drops_a_pools_clients(mux):
    c1 = mux.connect(autocommit=True)
    c1.cursor().execute("SELECT 1")
    c2 = mux.connect()
    c2.cursor().execute("SELECT 1")  # in a transaction
    other = mux.connect(dbname="postgres", autocommit=True)
    other.cursor().execute("SELECT 1")
    a = admin_connect(mux)
    with a.cursor() as cur:
        cur.execute("KILL %s" % DBNAME)
        assert cur.statusmessage == "KILL"
    for conn in (c1, c2):
        with pytest.raises(psycopg2.Error):
            conn.cursor().execute("SELECT 1")
    other.cursor().execute("SELECT 1")
    p = pool_row(a)
    assert (p["cl_active"], p["sv_active"], p["sv_idle"]) == (0, 0, 0)
    assert db_row(a, DBNAME)["paused"] == 1
    wait_until(lambda: mux.pg.count_backends(usenames=["testuser"]) <= 1, 5)
    # The database stays paused until RESUME.
    c3 = mux.connect(autocommit=True)
    fut = query_in_thread(c3, "SELECT 5")
    assert still_blocked(fut)
    assert "cannot kill admin db" in admin_error(a, "KILL pgbouncer")
    run(a, "RESUME %s" % DBNAME)
    assert fut.result(10) == (5,)
    assert "database removed" in mux.log()


def test_kill_client(mux):
    c = mux.connect(autocommit=True)
    c.cursor().execute("SELECT 1")
    keep = mux.connect(autocommit=True)
    keep.cursor().execute("SELECT 1")
    a = admin_connect(mux)
    ids = [r["id"] for r in rows_as_dicts(a, "SHOW CLIENTS") if r["database"] == DBNAME]
    assert len(ids) == 2
    target = ids[0]
    with a.cursor() as cur:
        cur.execute("KILL_CLIENT %d" % target)
        assert cur.statusmessage == "KILL_CLIENT"
    remaining = [r["id"] for r in rows_as_dicts(a, "SHOW CLIENTS") if r["database"] == DBNAME]
    assert remaining == ids[1:]
    alive = 0
    for conn in (c, keep):
        try:
            conn.cursor().execute("SELECT 1")
            alive += 1
        except psycopg2.Error as e:
            assert "admin forced disconnect" in str(e) or conn.closed
    assert alive == 1
    assert "client not found" in admin_error(a, "KILL_CLIENT 999999")
    assert "invalid client pointer supplied" in admin_error(a, "KILL_CLIENT abc")
    assert "invalid client pointer supplied" in admin_error(a, "KILL_CLIENT")


def test_reconnect_and_wait_close(mux):
    idle = mux.connect(autocommit=True)
    idle_pid = backend_pid(idle)
    busy = mux.connect()
    busy_pid = backend_pid(busy)  # in a transaction: keeps its server
    a = admin_connect(mux)
    with a.cursor() as cur:
        cur.execute("RECONNECT %s" % DBNAME)
        assert cur.statusmessage == "RECONNECT"
    servers = [r for r in rows_as_dicts(a, "SHOW SERVERS") if r["database"] == DBNAME]
    assert [(r["state"], r["close_needed"], r["remote_pid"]) for r in servers] == \
        [("active", 1, busy_pid)]
    # The idle server went at once: the next query gets a new backend.
    new_pid = backend_pid(idle)
    assert new_pid not in (idle_pid, busy_pid)
    fut = query_in_thread(a, "WAIT_CLOSE %s" % DBNAME)
    assert still_blocked(fut)
    busy.commit()
    fut.result(10)
    assert backend_pid(busy) != busy_pid
    busy.commit()
    b = admin_connect(mux)
    assert all(r["close_needed"] == 0 for r in rows_as_dicts(b, "SHOW SERVERS"))
    # Nothing to wait for: immediate answer.
    with b.cursor() as cur:
        cur.execute("WAIT_CLOSE")
        assert cur.statusmessage == "WAIT_CLOSE"
    run(b, "RECONNECT")
    assert "cannot reconnect admin db" in admin_error(b, "RECONNECT pgbouncer")
    assert "cannot wait in admin db" in admin_error(b, "WAIT_CLOSE pgbouncer")


def test_disable_enable(mux):
    existing = mux.connect(autocommit=True)
    a = admin_connect(mux)
    run(a, "DISABLE %s" % DBNAME)
    assert db_row(a, DBNAME)["disabled"] == 1
    with pytest.raises(psycopg2.OperationalError) as ei:
        mux.connect()
    assert 'database "%s" is disabled' % DBNAME in str(ei.value)
    existing.cursor().execute("SELECT 1")
    run(a, "ENABLE %s" % DBNAME)
    assert db_row(a, DBNAME)["disabled"] == 0
    mux.connect().close()
    assert "a database is required" in admin_error(a, "DISABLE")
    assert "cannot disable admin db" in admin_error(a, "DISABLE pgbouncer")
    assert "no such database" in admin_error(a, "ENABLE nosuch")


def test_reload(mux):
    a = admin_connect(mux)
    mux.settings["default_pool_size"] = "9"
    mux.write_config()
    with a.cursor() as cur:
        cur.execute("RELOAD")
        assert cur.statusmessage == "RELOAD"
    assert config_value(a, "default_pool_size")["value"] == "9"
    with open(mux.ini, "a") as f:
        f.write("default_pool_size = notanumber\n")
    msg = admin_error(a, "RELOAD")
    assert "RELOAD failed" in msg and "default_pool_size" in msg
    assert config_value(a, "default_pool_size")["value"] == "9"
    assert "invalid command" in admin_error(a, "RELOAD now")


def test_suspend_and_resume(mux):
    c = mux.connect(autocommit=True)
    c.cursor().execute("SELECT 1")
    a = admin_connect(mux)
    with a.cursor() as cur:
        cur.execute("SUSPEND")
        assert cur.statusmessage == "SUSPEND"
    assert state(a) == {"active": "no", "paused": "no", "suspended": "yes"}
    fut = query_in_thread(c, "SELECT 11")
    assert still_blocked(fut)
    assert "already suspended/paused" in admin_error(a, "SUSPEND")
    run(a, "RESUME")
    assert fut.result(10) == (11,)
    assert state(a)["active"] == "yes"
    # An admin that disappears while suspended resumes everything.
    run(a, "SUSPEND")
    fut = query_in_thread(c, "SELECT 12")
    assert still_blocked(fut)
    a.close()
    assert fut.result(10) == (12,)


def test_admin_login_on_unix_socket_during_suspend(mux):
    """During SUSPEND the Unix socket stays open so an operator can get in: a password login
    to the console there goes through (it is not suspended half-way) and can RESUME."""
    c = mux.connect(autocommit=True)
    c.cursor().execute("SELECT 1")
    a = admin_connect(mux)
    run(a, "SUSPEND")
    # the login waits at its password step while the janitor's suspend step runs
    r = RawClient(mux.port, host=mux.sockdir, timeout=5)
    r.login(ADMIN, password=ADMIN_PW, database="pgbouncer", hold=2.5)
    assert r.query("RESUME") == []
    r.close()
    fut = query_in_thread(c, "SELECT 13")
    assert fut.result(10) == (13,)
    a.close()


def test_shutdown_during_suspend_exits_at_once(mux):
    """SIGTERM (shutdown when all clients are gone) during SUSPEND: suspended clients are
    never read again, so waiting for them could never end; pgmux exits at once, as
    PgBouncer does."""
    c = mux.connect(autocommit=True)
    c.cursor().execute("SELECT 1")
    a = admin_connect(mux)
    run(a, "SUSPEND")
    mux.expect_exit = True
    mux.signal(signal.SIGTERM)
    wait_until(lambda: not mux.alive(), 10)
    mux.wait_log(r"during SUSPEND: exiting now", since_mark=False)


def test_shutdown_wait_for_clients(mux):
    c = mux.connect(autocommit=True)
    c.cursor().execute("SELECT 1")
    a = admin_connect(mux)
    with a.cursor() as cur:
        cur.execute("SHUTDOWN WAIT_FOR_CLIENTS")
        assert cur.statusmessage == "SHUTDOWN"
    mux.expect_exit = True
    a.close()
    time.sleep(0.6)
    assert mux.alive()
    with pytest.raises(psycopg2.OperationalError):
        mux.connect(connect_timeout=2)
    c.cursor().execute("SELECT 1")  # existing clients are served
    c.close()
    assert mux.proc.wait(10) == 0


def test_shutdown_wait_for_servers(mux):
    holder = mux.connect()
    holder.cursor().execute("SELECT 1")
    a = admin_connect(mux)
    run(a, "SHUTDOWN WAIT_FOR_SERVERS")
    mux.expect_exit = True
    time.sleep(0.6)
    assert mux.alive()
    holder.commit()  # the server is released, closed, and the process ends
    assert mux.proc.wait(10) == 0


def test_shutdown_immediate(mux):
    a = admin_connect(mux)
    mux.expect_exit = True
    with pytest.raises(psycopg2.OperationalError):
        run(a, "SHUTDOWN")
    assert mux.proc.wait(10) == 0
    assert not pid_alive(mux.pid)


# ---------------------------------------------------------------------------------------------
# access


def test_access_rules(mux):
    with pytest.raises(psycopg2.OperationalError) as ei:
        psycopg2.connect(host="127.0.0.1", port=mux.port, dbname="pgbouncer", user="testuser",
                         password="testpass", connect_timeout=10)
    assert "not allowed" in str(ei.value)
    with pytest.raises(psycopg2.OperationalError):
        admin_connect(mux, password="wrong")
    s = admin_connect(mux, user=STATS)
    assert pool_row(s, "pgbouncer", "pgbouncer") is not None
    run(s, "SHOW STATS")
    for cmd in ("PAUSE", "RESUME", "SUSPEND", "KILL %s" % DBNAME, "KILL_CLIENT 1", "RELOAD",
                "RECONNECT", "WAIT_CLOSE", "DISABLE %s" % DBNAME, "ENABLE %s" % DBNAME,
                "SHUTDOWN", "SHOW FDS", "SET default_pool_size = 2"):
        assert admin_error(s, cmd) == "admin access needed", cmd
    run(s, "SET client_encoding = 'UTF8'")  # a faked SET is fine for stats users
    assert run(s, "SHOW VERSION")[1][0][0].startswith("pgmux")
    assert state(s)["active"] == "yes"
    assert config_value(s, "default_pool_size")["value"] == "5"


def test_unix_socket_own_uid_pgbouncer_user(mux):
    """The user "pgbouncer" from pgmux's own UID over the Unix socket needs no password."""
    env = dict(os.environ, PGCONNECT_TIMEOUT="10")
    env.pop("PGPASSWORD", None)
    r = subprocess.run(["runuser", "-u", RUN_AS, "--", PSQL, "-X", "-A", "-t", "-w",
                        "-h", mux.sockdir, "-p", str(mux.port), "-U", "pgbouncer",
                        "-d", "pgbouncer", "-c", "SHOW VERSION"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("pgmux ")
    # It is an admin: process control works.
    r = subprocess.run(["runuser", "-u", RUN_AS, "--", PSQL, "-X", "-A", "-t", "-w",
                        "-h", mux.sockdir, "-p", str(mux.port), "-U", "pgbouncer",
                        "-d", "pgbouncer", "-c", "RECONNECT"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    # Another UID (root, running the tests) gets the normal authentication.
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(host=mux.sockdir, port=mux.port, dbname="pgbouncer", user="pgbouncer",
                         password="x", connect_timeout=10)
    # Over TCP the same name is an ordinary (unknown) user.
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(host="127.0.0.1", port=mux.port, dbname="pgbouncer", user="pgbouncer",
                         password="x", connect_timeout=10)


# ---------------------------------------------------------------------------------------------
# hostile and odd input: an ErrorResponse and ReadyForQuery, never a dropped connection


def test_bad_commands_keep_the_connection(mux):
    r = raw_admin(mux)
    bad = {
        "FOO": "invalid command 'FOO', use SHOW HELP;",
        "SHOW": "invalid command",
        "SHOW NOPE": "invalid command",
        "SHOW POOLS EXTRA": "invalid command",
        "SHOW POOLS; SHOW STATS": "invalid command",
        'PAUSE "unterminated': "bad arguments",
        "PAUSE " + "x" * 100: "bad arguments",
        'PAUSE ""': "bad arguments",
        "SET": "invalid command",
        "SET x": "invalid command",
        "SET x = ": "invalid command",
        "SET a = 'unterminated": "bad arguments",
        "SET a = '" + "v" * 2000 + "'": "bad arguments",
        "\x01\x02\x7f": "invalid command",
        "SHOW pools\u00e9": "invalid command",
        "SHUTDOWN NOW": "invalid command",
        "SUSPEND x": "invalid command",
        "x" * 3000: "invalid command",
        "SELECT version()": "invalid command",
        'PAUSE "a\nb"': "bad arguments",
        'PAUSE "\u00e9\u00e9"': "no such database: \u00e9\u00e9",
    }
    for sql, expect in bad.items():
        with pytest.raises(PgError) as ei:
            r.query(sql)
        assert expect in ei.value.message, (sql, ei.value.message)
        assert len(ei.value.message) < 400
        assert ei.value.sqlstate == "08P01"
    # Too long to be held whole (pkt_buf is 4096): skipped, answered, connection kept.
    with pytest.raises(PgError) as ei:
        r.query("SHOW " + "y" * 9000)
    assert "too long" in ei.value.message
    # Bytes after the query's NUL.
    r.send(RawClient.msg(b"Q", b"SHOW POOLS\0junk"))
    with pytest.raises(PgError):
        r.read_results()
    # An empty query is an EmptyQueryResponse, as in PostgreSQL.
    r.send(RawClient.msg(b"Q", b"  ;  \0"))
    msgs, how = r.collect()
    assert how == "stop" and [t for t, _ in msgs] == [b"I", b"Z"]
    # Accepted spellings.
    for sql in ("show pools;", "  SHOW\n\tPOOLS  ;  ", 'SHOW "pools"', "select pools",
                "SeLeCt 1", "BEGIN", "COMMIT", "ROLLBACK", "START TRANSACTION", "END"):
        r.query(sql)
    assert r.query("SHOW VERSION")[0][0].startswith("pgmux")
    # CopyData outside COPY is ignored; a FunctionCall gets an error.
    r.send(RawClient.msg(b"d", b"xyz"))
    r.send(RawClient.msg(b"F", struct.pack("!i", 1234) + b"\0\0\0\0\0\0\0\0"))
    with pytest.raises(PgError):
        r.read_results()
    assert r.query("SHOW VERSION")[0][0].startswith("pgmux")
    r.send(RawClient.msg(b"X"))
    r.wait_closed()


def test_garbage_message_type_closes_like_postgresql(mux):
    r = raw_admin(mux)
    r.send(RawClient.msg(b"?", b"abc"))
    msgs = r.wait_closed()
    assert msgs and msgs[-1][0] == b"E"
    a = admin_connect(mux)  # pgmux is fine
    run(a, "SHOW VERSION")


# ---------------------------------------------------------------------------------------------
# extended protocol


def ext_parse(name, query):
    return RawClient.msg(b"P", name.encode() + b"\0" + query.encode() + b"\0" + b"\0\0")


def ext_bind(portal="", stmt="", params=()):
    body = portal.encode() + b"\0" + stmt.encode() + b"\0" + struct.pack("!h", 0)
    body += struct.pack("!h", len(params))
    for p in params:
        body += struct.pack("!i", len(p)) + p
    body += struct.pack("!h", 0)
    return RawClient.msg(b"B", body)


def ext_describe(kind, name=""):
    return RawClient.msg(b"D", kind + name.encode() + b"\0")


def ext_execute(portal=""):
    return RawClient.msg(b"E", portal.encode() + b"\0" + struct.pack("!i", 0))


SYNC = RawClient.msg(b"S")


def test_extended_protocol_raw(mux):
    r = raw_admin(mux)
    r.send(ext_parse("", "SHOW POOLS") + ext_bind() + ext_describe(b"P") + ext_execute() + SYNC)
    msgs, how = r.collect()
    types = [t for t, _ in msgs]
    assert how == "stop"
    assert types[:3] == [b"1", b"2", b"T"] and types[-2:] == [b"C", b"Z"]
    assert set(types[3:-2]) == {b"D"}
    assert msgs[-2][1] == b"SHOW\0"
    # A named statement, described before execution: ParameterDescription + RowDescription.
    r.send(ext_parse("st1", "SHOW VERSION") + ext_describe(b"S", "st1") + SYNC)
    msgs, _ = r.collect()
    assert [t for t, _ in msgs] == [b"1", b"t", b"T", b"Z"]
    r.send(ext_bind("", "st1") + ext_execute() + ext_bind("", "st1") + ext_execute() + SYNC)
    msgs, _ = r.collect()
    assert [t for t, _ in msgs] == [b"2", b"D", b"C", b"2", b"D", b"C", b"Z"]
    # Describe of a control command: NoData, and nothing happens.
    r.send(ext_parse("", "PAUSE") + ext_bind() + ext_describe(b"P") + SYNC)
    msgs, _ = r.collect()
    assert [t for t, _ in msgs] == [b"1", b"2", b"n", b"Z"]
    assert dict(r.query("SHOW STATE"))["active"] == "yes"
    # Errors: reported once, then everything up to Sync is skipped.
    r.send(ext_parse("", "NOT A COMMAND") + ext_bind() + ext_execute() + SYNC)
    msgs, _ = r.collect()
    assert [t for t, _ in msgs] == [b"E", b"Z"]
    r.send(ext_parse("st1", "SHOW STATE") + SYNC)  # duplicate name
    assert [t for t, _ in r.collect()[0]] == [b"E", b"Z"]
    r.send(ext_bind("", "nosuch") + ext_execute() + SYNC)
    assert [t for t, _ in r.collect()[0]] == [b"E", b"Z"]
    r.send(ext_parse("", "SHOW LISTS") + ext_bind(params=[b"1"]) + SYNC)
    assert [t for t, _ in r.collect()[0]] == [b"1", b"E", b"Z"]
    r.send(ext_execute("noportal") + SYNC)
    assert [t for t, _ in r.collect()[0]] == [b"E", b"Z"]
    r.send(RawClient.msg(b"P", b"broken") + SYNC)  # malformed Parse
    assert [t for t, _ in r.collect()[0]] == [b"E", b"Z"]
    # Close, Flush, and an empty query.
    r.send(RawClient.msg(b"C", b"Sst1\0") + RawClient.msg(b"H"))
    t, _ = r.read_msg()
    assert t == b"3"
    r.send(ext_parse("", "") + ext_bind() + ext_execute() + SYNC)
    assert [t for t, _ in r.collect()[0]] == [b"1", b"2", b"I", b"Z"]
    # A control command through Execute answers with CommandComplete; Sync adds ReadyForQuery.
    r.send(ext_parse("", "RECONNECT") + ext_bind() + ext_execute() + SYNC)
    msgs, _ = r.collect()
    assert [t for t, _ in msgs] == [b"1", b"2", b"C", b"Z"] and msgs[2][1] == b"RECONNECT\0"
    # A deferred answer (PAUSE) through the extended protocol.
    r.send(ext_parse("", "PAUSE") + ext_bind() + ext_execute() + SYNC)
    msgs, _ = r.collect()
    assert [t for t, _ in msgs] == [b"1", b"2", b"C", b"Z"] and msgs[2][1] == b"PAUSE\0"
    r.query("RESUME")


def test_psycopg3_extended_protocol(mux):
    import psycopg
    c = mux.connect(autocommit=True)
    c.cursor().execute("SELECT 1")
    a2 = admin_connect(mux)
    expected = run(a2, "SHOW POOLS")
    with psycopg.connect(host="127.0.0.1", port=mux.port, dbname="pgbouncer", user=ADMIN,
                         password=ADMIN_PW, autocommit=True) as a3:
        cur = a3.execute("SHOW POOLS")
        assert [d.name for d in cur.description] == SHOW["POOLS"]["columns"]
        rows = cur.fetchall()
        assert rows[0] == expected[1][0]  # p0/testuser, same as over the simple protocol
        assert rows[1][:3] == ("pgbouncer", "pgbouncer", 2)  # two consoles now
        assert isinstance(rows[0][2], int) and rows[0][15] == "transaction"
        # Prepared (named) statements, executed twice.
        for _ in range(3):
            assert a3.execute("SHOW VERSION", prepare=True).fetchone()[0].startswith("pgmux")
        with pytest.raises(psycopg.Error):
            a3.execute("NOT A COMMAND")
        assert a3.execute("SHOW STATE").fetchall()[0] == ("active", "yes")
        a3.execute("RECONNECT")
        assert a3.execute("SELECT 1").fetchone() == (1,)
    # Without autocommit psycopg sends BEGIN first: accepted as a no-op.
    with psycopg.connect(host="127.0.0.1", port=mux.port, dbname="pgbouncer", user=STATS,
                         password=STATS_PW) as s3:
        rows = s3.execute("SHOW STATS").fetchall()
        assert any(r[0] == DBNAME for r in rows)
        with pytest.raises(psycopg.Error) as ei:
            s3.execute("PAUSE")
        assert "admin access needed" in str(ei.value)
        s3.rollback()
        assert s3.execute("SHOW DATABASES").fetchall()


# ---------------------------------------------------------------------------------------------
# averages, peers, DNS


def test_stats_averages(adm_factory):
    m = adm_factory(settings={"stats_period": "1"})
    c = m.connect(autocommit=True)
    a = admin_connect(m)
    deadline = time.monotonic() + 2.6
    n = 0
    while time.monotonic() < deadline:
        c.cursor().execute("SELECT 1")
        n += 1
    avg = [r for r in rows_as_dicts(a, "SHOW STATS_AVERAGES") if r["database"] == DBNAME][0]
    assert avg["query_count"] > 0 and avg["xact_count"] > 0
    assert avg["query_time"] > 0 and avg["bytes_received"] > 0
    # A rate per second cannot exceed what we sent over the window.
    assert avg["query_count"] <= n
    st = [r for r in rows_as_dicts(a, "SHOW STATS") if r["database"] == DBNAME][0]
    assert st["total_query_count"] == n
    assert st["avg_query_count"] > 0
    totals = dict(run(a, "SHOW TOTALS")[1])
    assert totals["avg_query_count"] > 0


def test_show_peers(adm_factory):
    m = adm_factory(settings={"peer_id": "1"},
                    extra_ini="\n[peers]\n1 = host=127.0.0.1 port=1111\n"
                              "2 = host=10.0.0.2 port=2222 pool_size=3\n")
    a = admin_connect(m)
    assert run(a, "SHOW PEERS")[1] == [(2, "10.0.0.2", 2222, 3)]
    assert run(a, "SHOW PEER_POOLS")[1] == []
    assert dict(run(a, "SHOW LISTS")[1])["peers"] == 1


def test_show_dns_hosts(adm_factory, pg):
    m = adm_factory(databases={
        DBNAME: "host=127.0.0.1 port=%d dbname=%s" % (pg.port, DBNAME),
        "byname": "host=localhost port=%d dbname=%s" % (pg.port, DBNAME),
    })
    try:
        m.connect(dbname="byname", connect_timeout=5).close()
    except psycopg2.Error:
        pass  # localhost may resolve to ::1 first; the lookup is what we want here
    a = admin_connect(m)

    def hosts():
        return rows_as_dicts(a, "SHOW DNS_HOSTS")
    rows = wait_until(hosts, 5, msg="localhost in SHOW DNS_HOSTS")
    assert [r["hostname"] for r in rows] == ["localhost"]
    assert rows[0]["ttl"] <= 15 and (":%d" % pg.port) in rows[0]["addrs"]
    assert dict(run(a, "SHOW LISTS")[1])["dns_names"] == 1
    assert run(a, "SHOW DNS_ZONES")[1] == []


# ---------------------------------------------------------------------------------------------
# prometheus-pgbouncer-exporter (Debian package)

EXPORTER = "/usr/bin/prometheus-pgbouncer-exporter"

# Runs the package's own collectors and HTTP handler. The packaged command line cannot be used
# as it is (see the test), so this does what its main() does, minus the collectors that break.
EXPORTER_DRIVER = r"""
import sys
from http.server import HTTPServer
from prometheus_client.core import REGISTRY
from prometheus_pgbouncer_exporter.utils import get_connection
from prometheus_pgbouncer_exporter.collectors import (
    StatsCollector, PoolsCollector, DatabasesCollector, ListsCollector)
from prometheus_pgbouncer_exporter.exposition import create_request_handler

host, port, user, listen = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
conn = get_connection(user, port, host)
for cls in (StatsCollector, DatabasesCollector):
    try:
        list(cls(connection=conn, databases=None).collect())
        print("COLLECTOR_OK", cls.__name__, flush=True)
    except KeyError as e:
        print("COLLECTOR_KEYERROR", cls.__name__, e, flush=True)
REGISTRY.register(PoolsCollector(connection=conn, databases=None))
REGISTRY.register(ListsCollector(connection=conn))
httpd = HTTPServer(("127.0.0.1", listen), create_request_handler("/dev/null"))
print("READY", flush=True)
httpd.serve_forever()
"""


def ensure_exporter():
    if os.path.exists(EXPORTER):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "-q", "prometheus-pgbouncer-exporter"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                       timeout=600)
    if r.returncode != 0 or not os.path.exists(EXPORTER):
        pytest.skip("apt-get install prometheus-pgbouncer-exporter failed: %s"
                    % r.stdout[-500:].strip())


def test_prometheus_pgbouncer_exporter(mux):
    """The Debian package prometheus-pgbouncer-exporter 1.7 (cbaines' Python exporter, not the
    Go prometheus-community one) scraping pgmux.

    What it does:
      * it connects as --pgbouncer-user to database "pgbouncer" with psycopg2 (simple protocol,
        autocommit; the password comes from PGPASSWORD), and has no connection-string flag:
        --pgbouncer-host/--pgbouncer-port/--pgbouncer-user;
      * its STATS collector reads SHOW STATS column "total_requests", which PgBouncer renamed in
        1.8 (total_query_count). prometheus_client calls collect() when a collector is
        registered, so main() dies at startup with KeyError: 'total_requests'. It does exactly
        the same against Debian's own PgBouncer 1.18 and any PgBouncer >= 1.8;
      * its DATABASES collector reads the column "reserve_pool", which PgBouncer 1.25 calls
        "reserve_pool_size" (the name pgmux prints, PGBOUNCER.md 2.2): KeyError too;
      * its POOLS collector (cl_active, cl_waiting by database and user) and LISTS collector work
        and export pgbouncer_active_clients{database,user}, pgbouncer_waiting_clients{...} and
        pgbouncer_databases, pgbouncer_pools, pgbouncer_used_clients, ... (this exporter has no
        pgbouncer_pools_* / pgbouncer_databases_* families: those are the Go exporter's names).
    """
    ensure_exporter()
    c = mux.connect(autocommit=True)
    c.cursor().execute("SELECT 1")
    env = dict(os.environ, PGPASSWORD=ADMIN_PW)

    # 1. The packaged command line, as a service would run it.
    listen = free_port()
    r = subprocess.run([EXPORTER, "--pgbouncer-host", "127.0.0.1", "--pgbouncer-port",
                        str(mux.port), "--pgbouncer-user", ADMIN, "--host", "127.0.0.1",
                        "--port", str(listen)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                       timeout=60)
    assert r.returncode != 0
    assert "KeyError: 'total_requests'" in r.stderr, r.stderr[-2000:]

    # 2. Its working collectors, served by its own HTTP handler.
    listen = free_port()
    proc = subprocess.Popen([sys.executable, "-c", EXPORTER_DRIVER, "127.0.0.1", str(mux.port),
                             ADMIN, str(listen)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        while True:
            ln = proc.stdout.readline()
            assert ln, "exporter driver exited:\n" + "".join(lines)
            lines.append(ln)
            if ln.startswith("READY"):
                break
        out = "".join(lines)
        assert "COLLECTOR_KEYERROR StatsCollector 'total_requests'" in out, out
        assert "COLLECTOR_KEYERROR DatabasesCollector 'reserve_pool'" in out, out
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % listen,
                                      timeout=10).read().decode()
        assert re.search(r'^pgbouncer_active_clients\{database="%s",user="testuser"\} 1\.0$'
                         % DBNAME, body, re.M), body
        assert re.search(r'^pgbouncer_waiting_clients\{database="%s",user="testuser"\} 0\.0$'
                         % DBNAME, body, re.M), body
        assert re.search(r'^pgbouncer_active_clients\{database="pgbouncer",user="pgbouncer"\} '
                         r'1\.0$', body, re.M), body
        assert re.search(r"^pgbouncer_databases 3\.0$", body, re.M), body
        assert re.search(r"^pgbouncer_pools 2\.0$", body, re.M), body
        assert re.search(r"^pgbouncer_used_servers 1\.0$", body, re.M), body
        # The admin connection of the exporter is a console client of pgmux.
        a = admin_connect(mux)
        users = [r["user"] for r in rows_as_dicts(a, "SHOW CLIENTS")
                 if r["database"] == "pgbouncer"]
        assert users.count(ADMIN) == 2
    finally:
        proc.kill()
        proc.wait(5)


# ---------------------------------------------------------------------------------------------
# more access rules and control


def test_auth_type_any_uses_the_given_name(adm_factory):
    m = adm_factory(settings={"auth_type": "any"})
    a = admin_connect(m, password="")  # no password asked
    run(a, "RECONNECT")
    s = admin_connect(m, user=STATS, password="")
    assert "admin access needed" in admin_error(s, "RECONNECT")
    with pytest.raises(psycopg2.OperationalError) as ei:
        psycopg2.connect(host="127.0.0.1", port=m.port, dbname="pgbouncer", user="nobody",
                         connect_timeout=10)
    assert "not allowed" in str(ei.value)


def test_kill_everything_then_resume(mux):
    c = mux.connect(autocommit=True)
    c.cursor().execute("SELECT 1")
    other = mux.connect(dbname="postgres", autocommit=True)
    other.cursor().execute("SELECT 1")
    a = admin_connect(mux)
    run(a, "KILL")
    for conn in (c, other):
        with pytest.raises(psycopg2.Error):
            conn.cursor().execute("SELECT 1")
    assert {r["paused"] for r in rows_as_dicts(a, "SHOW DATABASES") if r["name"] != "pgbouncer"} \
        == {1}
    assert pool_row(a, "pgbouncer", "pgbouncer")["cl_active"] == 1  # the console survives
    c2 = mux.connect(autocommit=True)
    fut = query_in_thread(c2, "SELECT 8")
    assert still_blocked(fut)
    run(a, "RESUME")  # a bare RESUME also lifts the per-database pauses of KILL
    assert fut.result(10) == (8,)
    assert {r["paused"] for r in rows_as_dicts(a, "SHOW DATABASES")} == {0}


def test_pipelined_console_client_that_does_not_read(adm_factory):
    """Answers are queued while the socket is full and the client is not read meanwhile:
    pgmux neither drops the connection nor blocks other clients."""
    m = adm_factory()
    r = raw_admin(m)
    # About 8 MB of answers: more than the kernel buffers hold while we do not read (a tiny
    # SO_RCVBUF would only make TCP crawl: the persist timer, not pgmux, sets the pace).
    n = 1500
    payload = RawClient.msg(b"Q", b"SHOW CONFIG\0") * n
    sender_done = []

    def send_all():
        r.sock.sendall(payload)
        sender_done.append(True)
    ex = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    fut = ex.submit(send_all)
    time.sleep(1.0)
    # Meanwhile other clients are served.
    c = m.connect(autocommit=True)
    c.cursor().execute("SELECT 1")
    a = admin_connect(m)
    assert run(a, "SHOW VERSION")[1][0][0].startswith("pgmux")
    # Read everything back (parsing in place: the harness reader copies per message).
    buf, off, done, rows_seen = bytearray(r.buf), 0, 0, 0
    r.buf = b""
    r.sock.settimeout(20)
    while done < n:
        while len(buf) - off >= 5:
            (ln,) = struct.unpack_from("!i", buf, off + 1)
            if len(buf) - off < 1 + ln:
                break
            t = buf[off:off + 1]
            assert t != b"E", parse_error(bytes(buf[off + 5:off + 1 + ln]))
            rows_seen += t == b"D"
            done += t == b"Z"
            off += 1 + ln
        if done < n:
            chunk = r.sock.recv(1 << 20)
            assert chunk, "connection closed"
            buf += chunk
    assert off == len(buf)
    fut.result(10)
    ex.shutdown()
    assert sender_done and rows_seen == n * len(rows_as_dicts(a, "SHOW CONFIG"))
    assert r.query("SHOW VERSION")[0][0].startswith("pgmux")


def parse_error(body):
    return body.decode(errors="replace")


def test_text_values_stay_valid_utf8(adm_factory):
    """application_name comes from the client's startup packet and can be any bytes; SHOW
    CLIENTS must still be valid UTF-8 (client_encoding is UTF8), or drivers fail to decode it."""
    m = adm_factory(settings={"auth_type": "trust"})
    body = struct.pack("!i", 196608)
    for k, v in ((b"user", b"testuser"), (b"database", DBNAME.encode()),
                 (b"application_name", b"bad\xff\xfeapp")):
        body += k + b"\0" + v + b"\0"
    body += b"\0"
    r = m.raw()
    r.send(struct.pack("!i", len(body) + 4) + body)
    msgs, how = r.collect()
    assert how == "stop", msgs
    a = admin_connect(m, password="")
    names = [x["application_name"] for x in rows_as_dicts(a, "SHOW CLIENTS")
             if x["database"] == DBNAME]
    assert names == ["bad??app"]
    r.close()


def test_random_hostile_input(mux):
    """Random token soup through Query, and random bodies in extended-protocol messages, from a
    stats user (so no command can change anything): every one is answered, nothing is dropped."""
    import random
    rnd = random.Random(5)
    tokens = ["SHOW", "SET", "SELECT", "PAUSE", "KILL", "SHUTDOWN", "RELOAD", "pools", "1", "=",
              "TO", ";", ";;", "'", "''", '"', '""', "'a''b'", '"x""y"', "\t", "\n", " ",
              "client_encoding", "default_pool_size", "x" * 70, "\u00e9", "\x00", "\x01", "$1",
              "(", ")", "--", "/*", "*/", "WAIT_FOR_CLIENTS", "p0", "pgbouncer", "-1", "1.5"]
    r = raw_admin(mux, STATS, STATS_PW)
    for _ in range(400):
        q = "".join(rnd.choice(tokens) + rnd.choice(["", " "]) for _ in range(rnd.randint(0, 8)))
        q = q.replace("\x00", "")
        r.send(RawClient.msg(b"Q", q.encode() + b"\0"))
        msgs, how = r.collect(timeout=5)
        assert how == "stop", (q, msgs)
    kinds = [b"P", b"B", b"D", b"E", b"C", b"H"]
    for _ in range(300):
        batch = b""
        for _ in range(rnd.randint(1, 4)):
            body = bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 40)))
            if rnd.random() < 0.5:
                body = rnd.choice([b"", b"s\0", b"Ps\0", b"S\0"]) + body
            batch += RawClient.msg(rnd.choice(kinds), body)
        r.send(batch + SYNC)
        msgs, how = r.collect(timeout=5)
        assert how == "stop", msgs
    assert r.query("SHOW VERSION")[0][0].startswith("pgmux")
    assert mux.alive()


def test_prepared_statement_counters(adm_factory):
    """SHOW STATS_TOTALS counts client Parses, server Parses and Binds of named statements
    (transaction mode), and SHOW CLIENTS/SERVERS show how many each socket holds."""
    import psycopg
    mux = adm_factory(settings={"pool_mode": "transaction", "default_pool_size": 1})
    conn = psycopg.connect(host="127.0.0.1", port=mux.port, dbname=DBNAME, user="testuser",
                           password=default_userlist()["testuser"], autocommit=True,
                           prepare_threshold=0)
    try:
        for k in range(5):
            assert conn.execute("SELECT %s::int + 1", (k,)).fetchone() == (k + 1,)
        assert conn.execute("SELECT %s::text || 'x'", ("a",)).fetchone() == ("ax",)
        a = admin_connect(mux)
        try:
            tot = [r for r in rows_as_dicts(a, "SHOW STATS_TOTALS")
                   if r["database"] == DBNAME][0]
            # two distinct statements, each prepared once by the client and once on the server
            assert int(tot["client_parse_count"]) == 2, tot
            assert int(tot["server_parse_count"]) == 2, tot
            assert int(tot["bind_count"]) == 6, tot
            clients = [r for r in rows_as_dicts(a, "SHOW CLIENTS") if r["database"] == DBNAME]
            assert [int(r["prepared_statements"]) for r in clients] == [2]
            servers = [r for r in rows_as_dicts(a, "SHOW SERVERS") if r["database"] == DBNAME]
            assert [int(r["prepared_statements"]) for r in servers] == [2]
        finally:
            a.close()
    finally:
        conn.close()
