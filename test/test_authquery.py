"""auth_user / auth_query / auth_dbname: users missing from the auth file are looked up in
PostgreSQL through a pooled server connection of auth_user, with md5 and SCRAM secrets, and
pgmux logs in to PostgreSQL as them (md5 hash, or SCRAM pass-through keys)."""

import os
import socket
import struct
import threading
import time

import psycopg2
import pytest

from pgmux_helpers import DBNAME, USERS, PgError, wait_until

AUTH_USER = "aq_auth"
AUTH_PASS = "aq-auth-pw-7d1"
# Roles that exist only in PostgreSQL, not in the auth file.
ROLES = {
    "aq_scram": ("scram-sha-256", "aq-scram-pw-4c2"),
    "aq_md5": ("md5", "aq-md5-pw-9e5"),
    "aq_expired": ("scram-sha-256", "aq-expired-pw-1b8"),
}
LOOKUP = "SELECT usename, passwd FROM aq_lookup($1)"
SLOW_LOOKUP = "SELECT usename, passwd FROM aq_lookup_slow($1)"


@pytest.fixture(scope="module")
def aq_pg(pg):
    for name, (enc, pw) in ROLES.items():
        pg.sql('DROP ROLE IF EXISTS "%s"' % name)
        pg.sql("SET password_encryption = '%s'; CREATE ROLE \"%s\" LOGIN PASSWORD '%s'"
               % (enc, name, pw))
    pg.sql("ALTER ROLE aq_expired VALID UNTIL '2001-01-01'")
    pg.sql('DROP ROLE IF EXISTS "%s"' % AUTH_USER)
    pg.sql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (AUTH_USER, AUTH_PASS))
    pg.sql("GRANT ALL ON DATABASE %s TO PUBLIC" % DBNAME)
    # The usual setup: a SECURITY DEFINER function owned by a superuser, in the database
    # auth_query runs in. It exists in `postgres` only, so auth_dbname is observable.
    pg.sql("""
        CREATE OR REPLACE FUNCTION aq_lookup(p_user text, OUT usename text, OUT passwd text)
        RETURNS record LANGUAGE sql SECURITY DEFINER AS $$
          SELECT rolname::text, CASE WHEN rolvaliduntil < now() THEN NULL
                                     ELSE rolpassword END
          FROM pg_authid WHERE rolname = p_user AND rolcanlogin $$;
        CREATE OR REPLACE FUNCTION aq_lookup_slow(p_user text, OUT usename text,
                                                  OUT passwd text)
        RETURNS record LANGUAGE sql SECURITY DEFINER AS $$
          SELECT rolname::text, rolpassword FROM pg_authid, pg_sleep(1.5)
          WHERE rolname = p_user $$;
        CREATE OR REPLACE FUNCTION aq_lookup_hang(p_user text, OUT usename text,
                                                  OUT passwd text)
        RETURNS record LANGUAGE sql SECURITY DEFINER AS $$
          SELECT rolname::text, rolpassword FROM pg_authid, pg_sleep(20)
          WHERE rolname = p_user $$;
        CREATE OR REPLACE FUNCTION aq_lookup_other(p_user text, OUT usename text,
                                                   OUT passwd text)
        RETURNS record LANGUAGE sql AS $$
          SELECT p_user, 'md5' || md5('other-cluster-pw' || p_user) $$;
        REVOKE ALL ON FUNCTION aq_lookup(text) FROM PUBLIC;
        REVOKE ALL ON FUNCTION aq_lookup_slow(text) FROM PUBLIC;
        REVOKE ALL ON FUNCTION aq_lookup_hang(text) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION aq_lookup(text) TO %s;
        GRANT EXECUTE ON FUNCTION aq_lookup_slow(text) TO %s;
        GRANT EXECUTE ON FUNCTION aq_lookup_hang(text) TO %s;
    """ % (AUTH_USER, AUTH_USER, AUTH_USER))
    yield pg
    for name in list(ROLES) + [AUTH_USER]:
        pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
               [name])
    pg.sql("DROP FUNCTION IF EXISTS aq_lookup(text); DROP FUNCTION IF EXISTS aq_lookup_slow(text); "
           "DROP FUNCTION IF EXISTS aq_lookup_hang(text); DROP FUNCTION IF EXISTS aq_lookup_other(text)")
    for name in list(ROLES) + [AUTH_USER]:
        pg.sql('DROP OWNED BY "%s"; DROP ROLE IF EXISTS "%s"' % (name, name))


def _dbs(pg, p0_extra="", pg_extra=""):
    return {
        DBNAME: ("host=127.0.0.1 port=%d dbname=%s " % (pg.port, DBNAME) + p0_extra).strip(),
        "postgres": ("host=127.0.0.1 port=%d dbname=postgres " % pg.port + pg_extra).strip(),
    }


def _userlist():
    ul = dict(USERS)
    ul[AUTH_USER] = AUTH_PASS
    return ul


def _make(pgmux_factory, pg, settings=None, databases=None, hba=None):
    s = {"auth_user": AUTH_USER, "auth_query": LOOKUP, "auth_dbname": "postgres"}
    s.update(settings or {})
    for k in [k for k, v in s.items() if v is None]:
        del s[k]
    m = pgmux_factory(settings=s, databases=databases or _dbs(pg), userlist=_userlist(),
                      start=False)
    if hba:
        path = os.path.join(m.dir, "hba.conf")
        m.write_file(path, hba)
        m.settings["auth_hba_file"] = path
        m.write_config()
    return m.start()


def _whoami(m, user, password, **kw):
    c = m.connect(user=user, password=password, autocommit=True, **kw)
    try:
        cur = c.cursor()
        cur.execute("SELECT current_user, (SELECT count(*) FROM pg_stat_ssl)")
        return cur.fetchone()[0]
    finally:
        c.close()


@pytest.mark.parametrize("auth_type", ["scram-sha-256", "md5", "plain", "hba"])
def test_scram_secret(pgmux_factory, aq_pg, auth_type):
    hba = "host all all 127.0.0.1/32 scram-sha-256\n" if auth_type == "hba" else None
    m = _make(pgmux_factory, aq_pg, {"auth_type": auth_type}, hba=hba)
    if auth_type == "plain":
        # The cleartext password is checked against the SCRAM verifier, as PostgreSQL does.
        with pytest.raises(psycopg2.OperationalError) as ei:
            _whoami(m, "aq_scram", "not-" + ROLES["aq_scram"][1])
        assert 'password authentication failed for user "aq_scram"' in str(ei.value)
    assert _whoami(m, "aq_scram", ROLES["aq_scram"][1]) == "aq_scram"
    # The server connection was made with the keys from the client's own SCRAM proof (or,
    # for plain, the keys the cleartext password gives).
    assert aq_pg.count_backends(["aq_scram"]) >= 1


@pytest.mark.parametrize("auth_type", ["md5", "plain"])
def test_md5_secret(pgmux_factory, aq_pg, auth_type):
    m = _make(pgmux_factory, aq_pg, {"auth_type": auth_type})
    assert _whoami(m, "aq_md5", ROLES["aq_md5"][1]) == "aq_md5"
    assert aq_pg.count_backends(["aq_md5"]) >= 1


def test_md5_secret_refused_for_scram_clients(pgmux_factory, aq_pg):
    """An md5 hash cannot answer SCRAM: the login fails like a wrong password."""
    m = _make(pgmux_factory, aq_pg, {"auth_type": "scram-sha-256"})
    with pytest.raises(psycopg2.OperationalError) as ei:
        _whoami(m, "aq_md5", ROLES["aq_md5"][1])
    assert 'password authentication failed for user "aq_md5"' in str(ei.value)


@pytest.mark.parametrize("auth_type", ["scram-sha-256", "md5"])
@pytest.mark.parametrize("who", ["aq_scram", "nobody_at_all", "aq_expired"])
def test_failures_look_like_postgresql(pgmux_factory, aq_pg, auth_type, who):
    """Wrong password, unknown user and expired password (the query's NULL) give PostgreSQL's
    28P01 text, over the same exchange."""
    m = _make(pgmux_factory, aq_pg, {"auth_type": auth_type})
    pw = "wrong-pw" if who != "aq_expired" else ROLES["aq_expired"][1]
    r = m.raw()
    with pytest.raises(PgError) as ei:
        r.login(who, password=pw)
    r.close()
    assert ei.value.sqlstate == "28P01", ei.value.fields
    assert ei.value.message == 'password authentication failed for user "%s"' % who
    # the right password of a looked-up user still works afterwards
    assert _whoami(m, "aq_scram", ROLES["aq_scram"][1]) == "aq_scram"


def test_default_auth_query_honours_valid_until(pgmux_factory, aq_pg):
    """The default auth_query reads pg_authid directly: auth_user must be a superuser."""
    aq_pg.sql("ALTER ROLE %s SUPERUSER" % AUTH_USER)
    try:
        m = _make(pgmux_factory, aq_pg, {"auth_query": None, "auth_dbname": None})
        assert _whoami(m, "aq_scram", ROLES["aq_scram"][1]) == "aq_scram"
        with pytest.raises(psycopg2.OperationalError) as ei:
            _whoami(m, "aq_expired", ROLES["aq_expired"][1])
        assert 'password authentication failed for user "aq_expired"' in str(ei.value)
    finally:
        aq_pg.sql("ALTER ROLE %s NOSUPERUSER" % AUTH_USER)


def test_auth_dbname(pgmux_factory, aq_pg):
    """The lookup function lives in `postgres` only: without auth_dbname the query fails in
    p0, the client is refused without detail and the log says why; with it the login works."""
    m = _make(pgmux_factory, aq_pg, {"auth_dbname": None})
    r = m.raw()
    with pytest.raises(PgError) as ei:
        r.login("aq_scram", password=ROLES["aq_scram"][1])
    r.close()
    assert ei.value.sqlstate == "08006", ei.value.fields
    assert ei.value.message == 'could not check the password of user "aq_scram"'
    m.wait_log(r'auth_query for user "aq_scram" failed: function aq_lookup\(unknown\) does '
               r'not exist', since_mark=False)
    # users from the auth file are unaffected, and the server survived the error
    assert _whoami(m, "testuser", USERS["testuser"]) == "testuser"
    m2 = _make(pgmux_factory, aq_pg)
    assert _whoami(m2, "aq_scram", ROLES["aq_scram"][1]) == "aq_scram"


def test_per_database_auth_user(pgmux_factory, aq_pg):
    """auth_user in a [databases] entry applies to that entry only."""
    dbs = _dbs(aq_pg, p0_extra="auth_user=%s auth_dbname=postgres" % AUTH_USER)
    m = _make(pgmux_factory, aq_pg, {"auth_user": None, "auth_dbname": None}, databases=dbs)
    assert _whoami(m, "aq_scram", ROLES["aq_scram"][1]) == "aq_scram"
    with pytest.raises(psycopg2.OperationalError) as ei:
        _whoami(m, "aq_scram", ROLES["aq_scram"][1], dbname="postgres")
    assert 'password authentication failed for user "aq_scram"' in str(ei.value)


def test_scram_pass_through_after_server_reconnect(pgmux_factory, aq_pg):
    """The client stays connected while its server connection is killed; the next query needs
    a new server login as aq_scram, which pgmux makes with the keys of the client's proof."""
    m = _make(pgmux_factory, aq_pg)
    c = m.connect(user="aq_scram", password=ROLES["aq_scram"][1], autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid1 = cur.fetchone()[0]
    aq_pg.terminate(pid1)
    wait_until(lambda: aq_pg.count_backends(["aq_scram"]) == 0, 10)
    m.wait_log(r"server closed the connection|closing because", since_mark=False)
    cur.execute("SELECT current_user, pg_backend_pid()")
    user, pid2 = cur.fetchone()
    assert user == "aq_scram" and pid2 != pid1
    c.close()


def test_lookups_are_pooled(pgmux_factory, aq_pg):
    """30 concurrent logins of looked-up users share auth_user's pool (pool_size 2)."""
    m = _make(pgmux_factory, aq_pg, {"default_pool_size": 2, "max_client_conn": 100,
                                    "auth_type": "md5"})
    errors, peak = [], [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], aq_pg.count_backends([AUTH_USER]))
            time.sleep(0.02)

    def login(i):
        user = "aq_scram" if i % 2 else "aq_md5"
        try:
            c = m.connect(user=user, password=ROLES[user][1], autocommit=True)
            c.cursor().execute("SELECT 1")
            c.close()
        except Exception as e:  # noqa: BLE001 - collected and reported below
            errors.append("%s: %s" % (user, e))

    w = threading.Thread(target=watch)
    w.start()
    ts = [threading.Thread(target=login, args=(i,)) for i in range(30)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    stop.set()
    w.join()
    assert not errors, errors[:3]
    assert 1 <= peak[0] <= 2, "auth_user backends peaked at %d" % peak[0]


def test_lookup_does_not_block_others(pgmux_factory, aq_pg):
    """A slow auth_query (1.5 s) holds only the logins waiting for it: a user from the auth
    file logs in and queries meanwhile, and a client that leaves mid-lookup costs nothing."""
    m = _make(pgmux_factory, aq_pg, {"auth_query": SLOW_LOOKUP})
    result = {}

    def slow_login():
        t0 = time.monotonic()
        result["user"] = _whoami(m, "aq_scram", ROLES["aq_scram"][1])
        result["took"] = time.monotonic() - t0

    t = threading.Thread(target=slow_login)
    t.start()
    time.sleep(0.3)
    # a client that gives up while its lookup runs
    s = socket.create_connection(("127.0.0.1", m.port))
    body = struct.pack("!i", 196608) + b"user\0aq_md5\0database\0p0\0\0"
    s.sendall(struct.pack("!i", len(body) + 4) + body)
    time.sleep(0.1)
    s.close()
    t0 = time.monotonic()
    assert _whoami(m, "testuser", USERS["testuser"]) == "testuser"
    assert time.monotonic() - t0 < 1.0
    t.join(10)
    assert result.get("user") == "aq_scram", result
    assert result["took"] >= 1.4
    # the abandoned lookup finished and its server went back to the pool
    wait_until(lambda: aq_pg.count_backends([AUTH_USER], state="active") == 0, 10)
    assert _whoami(m, "aq_scram", ROLES["aq_scram"][1]) == "aq_scram"
    assert m.alive()


def test_hung_lookup_frees_its_server(pgmux_factory, aq_pg):
    """A lookup that never answers (here: a 20 s sleep) fails its login at
    client_login_timeout, and its server is closed then too, so the pool's only slot is not
    held: after a RELOAD to a working auth_query the next looked-up login gets in at once."""
    m = _make(pgmux_factory, aq_pg, {"auth_query": "SELECT usename, passwd FROM "
                                     "aq_lookup_hang($1)", "default_pool_size": 1,
                                     "client_login_timeout": 2, "auth_type": "md5"})
    t0 = time.monotonic()
    with pytest.raises(psycopg2.OperationalError) as ei:
        m.connect(user="aq_md5", password=ROLES["aq_md5"][1])
    assert "client_login_timeout" in str(ei.value)
    assert time.monotonic() - t0 < 6
    m.wait_log(r"auth_query timeout", since_mark=False)
    m.settings["auth_query"] = LOOKUP
    m.write_config()
    m.mark_log()
    m.reload()
    m.wait_log(r"(?i)reload")
    t1 = time.monotonic()
    assert _whoami(m, "aq_md5", ROLES["aq_md5"][1]) == "aq_md5"
    assert time.monotonic() - t1 < 5


def _refused(m, user, password, database=DBNAME):
    """The raw client sends exactly the password given, even an empty one (libpq would not)."""
    r = m.raw()
    try:
        with pytest.raises(PgError) as ei:
            r.login(user, password=password, database=database)
    finally:
        r.close()
    assert ei.value.sqlstate == "28P01", ei.value.fields
    assert ei.value.message == 'password authentication failed for user "%s"' % user


def test_empty_secret_never_matches(pgmux_factory, aq_pg):
    """An auth_query row with an empty password, like an auth file entry with "", fails every
    login as a wrong password would (PostgreSQL and PgBouncer never accept an empty one)."""
    m = _make(pgmux_factory, aq_pg, {"auth_query": "SELECT $1::text, ''::text",
                                     "auth_type": "plain"})
    for pw in ("", "x"):
        _refused(m, "aq_nobody", pw)


@pytest.mark.parametrize("auth_type", ["plain", "md5", "scram-sha-256", "trust"])
def test_empty_auth_file_password(pgmux_factory, pg, auth_type):
    """"user" "" in the auth file: no password logs in, not even an empty one; under trust
    the listed user still gets in, as in PgBouncer."""
    ul = dict(USERS)
    ul["emptypw"] = ""
    forced = "host=127.0.0.1 port=%d dbname=%s user=testuser password=%s" % (
        pg.port, DBNAME, USERS["testuser"])
    m = pgmux_factory(settings={"auth_type": auth_type}, userlist=ul,
                      databases={"forced": forced})
    if auth_type != "trust":
        for pw in ("", "x"):
            _refused(m, "emptypw", pw, database="forced")
        return
    r = m.raw()
    r.login("emptypw", password="", database="forced")
    assert r.query("SELECT current_user") == [("testuser",)]
    r.close()


def test_looked_up_secret_is_per_database(pgmux_factory, aq_pg):
    """Two databases look the same user up in different places (here: another auth_query
    that stands for another cluster, with another password). A login to one must not change
    the secret pgmux logs in with for the other: a client of p0 that needs a new server after
    someone logged in to "other" still gets one."""
    other = ("host=127.0.0.1 port=%d dbname=%s auth_query='SELECT usename, passwd FROM "
             "aq_lookup_other($1)'" % (aq_pg.port, DBNAME))
    dbs = _dbs(aq_pg)
    dbs["other"] = other
    m = _make(pgmux_factory, aq_pg, {"auth_type": "md5"}, databases=dbs)
    x = m.connect(user="aq_md5", password=ROLES["aq_md5"][1], autocommit=True)
    x.cursor().execute("SELECT 1")
    # the other "cluster" knows aq_md5 by another password; PostgreSQL here does not, so that
    # pool's server login fails, which does not matter for this test
    try:
        m.connect(dbname="other", user="aq_md5", password="other-cluster-pw").close()
    except psycopg2.OperationalError:
        pass
    # p0's server goes away; x's next query needs a new server login as aq_md5
    aq_pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
              "WHERE usename = 'aq_md5' AND datname = %s", [DBNAME])
    wait_until(lambda: aq_pg.count_backends(["aq_md5"]) == 0, 10)
    time.sleep(0.5)  # pgmux sees the idle server's connection end and drops it
    cur = x.cursor()
    cur.execute("SELECT current_user")
    assert cur.fetchone()[0] == "aq_md5"
    x.close()


def test_auth_user_login_failure(pgmux_factory, aq_pg):
    """auth_user's own password is wrong: waiting logins fail promptly, not at a timeout."""
    ul = _userlist()
    ul[AUTH_USER] = "not-the-password"
    m = pgmux_factory(settings={"auth_user": AUTH_USER, "auth_query": LOOKUP,
                                "auth_dbname": "postgres", "client_login_timeout": 30},
                      databases=_dbs(aq_pg), userlist=ul)
    t0 = time.monotonic()
    r = m.raw()
    with pytest.raises(PgError) as ei:
        r.login("aq_scram", password=ROLES["aq_scram"][1])
    r.close()
    assert time.monotonic() - t0 < 10
    assert ei.value.sqlstate == "08006"
    assert ei.value.message == 'could not check the password of user "aq_scram"'


def test_secrets_never_logged(pgmux_factory, aq_pg):
    """Verbose logging through logins, failures and server logins: no password and no
    stored secret of any looked-up user appears in pgmux's log."""
    m = _make(pgmux_factory, aq_pg, {"verbose": 2, "auth_type": "md5"})
    _whoami(m, "aq_scram", ROLES["aq_scram"][1])
    _whoami(m, "aq_md5", ROLES["aq_md5"][1])
    for who in ("aq_scram", "aq_md5", "nobody_at_all"):
        with pytest.raises(psycopg2.OperationalError):
            _whoami(m, who, "wrong-pw")
    secrets = [r[0] for r in aq_pg.sql(
        "SELECT rolpassword FROM pg_authid WHERE rolname = ANY(%s)",
        [list(ROLES) + [AUTH_USER]])]
    assert len(secrets) == len(ROLES) + 1
    log = m.log()
    assert "auth_query" in log or "aq_scram" in log  # the log is the real one
    for needle in secrets + [pw for _, pw in ROLES.values()] + [AUTH_PASS]:
        assert needle not in log
        # SCRAM secrets: neither the stored key nor the server key alone
        for part in needle.replace("$", ":").split(":"):
            if len(part) >= 20:
                assert part not in log, "secret part in the log"
