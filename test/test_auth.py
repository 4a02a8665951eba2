"""Client authentication against auth_file (plain, md5 and SCRAM secrets) with auth_type
trust / plain / md5 / scram-sha-256, and server-side login with what the auth_file holds.
Failures look like PostgreSQL's: SQLSTATE 28P01, `password authentication failed for user
"NAME"`, the same for unknown users."""

import psycopg2
import pytest

from pgmux_helpers import DBNAME, USERS, PgError, md5_secret, scram_secret

METHODS = ["plain", "md5", "scram-sha-256"]


def _q(m, **kw):
    c = m.connect(autocommit=True, **kw)
    cur = c.cursor()
    cur.execute("SELECT current_user")
    v = cur.fetchone()[0]
    c.close()
    return v


@pytest.mark.parametrize("auth_type", METHODS)
def test_login_plain_secret(pgmux_factory, auth_type):
    """userlist.txt with plain passwords: every client method works, for a SCRAM role and an
    md5 role on the server."""
    m = pgmux_factory(settings={"auth_type": auth_type})
    assert _q(m, user="testuser") == "testuser"
    assert _q(m, user="md5user") == "md5user"
    r = m.raw()
    r.login("testuser")
    assert r.query("SELECT current_user") == [("testuser",)]
    r.close()


@pytest.mark.parametrize("auth_type", METHODS)
@pytest.mark.parametrize("who", ["wrong_password", "unknown_user"])
def test_auth_failure_message(pgmux_factory, auth_type, who):
    m = pgmux_factory(settings={"auth_type": auth_type})
    user = "testuser" if who == "wrong_password" else "nobody_here"
    r = m.raw()
    with pytest.raises(PgError) as ei:
        r.login(user, password="definitely-wrong")
    r.close()
    assert ei.value.sqlstate == "28P01", ei.value.fields
    assert ei.value.message == 'password authentication failed for user "%s"' % user
    assert ei.value.fields.get("S") == "FATAL"
    # psycopg2 sees the same text
    with pytest.raises(psycopg2.OperationalError) as ei2:
        m.connect(user=user, password="definitely-wrong")
    assert 'password authentication failed for user "%s"' % user in str(ei2.value)
    # and the right password still works
    assert _q(m) == "testuser"


@pytest.mark.parametrize("auth_type", ["md5", "scram-sha-256"])
def test_unknown_user_same_exchange(pgmux_factory, auth_type):
    """An unknown user is asked for the same kind of password as a known one (no user
    enumeration from the auth request either)."""
    import struct
    m = pgmux_factory(settings={"auth_type": auth_type})
    codes = []
    for user in ("testuser", "nobody_here"):
        r = m.raw()
        r.startup(user, DBNAME)
        t, body = r.read_msg()
        assert t == b"R"
        codes.append(struct.unpack("!i", body[:4])[0])
        r.close()
    assert codes[0] == codes[1], "known and unknown user get different auth requests: %s" % codes


def test_trust(pgmux_factory):
    m = pgmux_factory(settings={"auth_type": "trust"})
    # any password (or none) is accepted for a user in the auth_file; the server login uses
    # the auth_file password
    assert _q(m, user="testuser", password="whatever") == "testuser"
    r = m.raw()
    r.startup("md5user", DBNAME)
    t, body = r.read_msg()
    assert (t, body[:4]) == (b"R", b"\0\0\0\0"), "trust must not ask for a password"
    while True:
        t, body = r.read_msg()
        if t == b"Z":
            break
    assert r.query("SELECT current_user") == [("md5user",)]
    r.close()


def test_md5_secret_in_auth_file(pgmux_factory):
    """auth_file holds md5 hashes: md5 client auth works, and pgmux logs into the md5 role on
    PostgreSQL with the hash."""
    ul = {u: md5_secret(u, p) for u, p in USERS.items()}
    m = pgmux_factory(settings={"auth_type": "md5"}, userlist=ul)
    assert _q(m, user="md5user") == "md5user"
    with pytest.raises(psycopg2.OperationalError) as ei:
        m.connect(user="md5user", password="nope")
    assert 'password authentication failed for user "md5user"' in str(ei.value)


def test_md5_secret_with_scram_auth_type(pgmux_factory):
    """auth_type=scram-sha-256 with an md5 secret in auth_file cannot verify SCRAM; PgBouncer
    falls back to md5 for that user. Either md5 works or the login fails cleanly."""
    ul = dict(USERS)
    ul["md5user"] = md5_secret("md5user", USERS["md5user"])
    m = pgmux_factory(settings={"auth_type": "scram-sha-256"}, userlist=ul)
    try:
        assert _q(m, user="md5user") == "md5user"
    except psycopg2.OperationalError as e:
        assert "authentication failed" in str(e)
    assert _q(m, user="testuser") == "testuser"


def test_scram_secret_with_forced_password(pgmux_factory, pg):
    """auth_file holds a SCRAM secret (made by us, not PostgreSQL's); the database entry gives
    user and password for the server side."""
    ul = dict(USERS)
    ul["testuser"] = scram_secret("testpass")
    m = pgmux_factory(settings={"auth_type": "scram-sha-256"}, userlist=ul, databases={
        "forced": "host=127.0.0.1 port=%d dbname=p0 user=scramuser password=scrampass" % pg.port,
    })
    c = m.connect(dbname="forced", user="testuser", password="testpass", autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT current_user, current_database()")
    assert cur.fetchone() == ("scramuser", "p0")
    c.close()
    with pytest.raises(psycopg2.OperationalError) as ei:
        m.connect(dbname="forced", user="testuser", password="bad")
    assert 'password authentication failed for user "testuser"' in str(ei.value)


@pytest.mark.parametrize("auth_type", ["scram-sha-256", "plain"])
def test_scram_passthrough_with_pg_secret(pgmux_factory, pg, auth_type):
    """auth_file holds PostgreSQL's own SCRAM secret for scramuser: the client's proof (with
    plain: its cleartext password, checked against the verifier) lets pgmux log into
    PostgreSQL with SCRAM as that user (PgBouncer's SCRAM pass-through)."""
    secret = pg.scalar("SELECT rolpassword FROM pg_authid WHERE rolname = 'scramuser'")
    assert secret.startswith("SCRAM-SHA-256$")
    ul = dict(USERS)
    ul["scramuser"] = secret
    m = pgmux_factory(settings={"auth_type": auth_type}, userlist=ul)
    assert _q(m, user="scramuser") == "scramuser"
    with pytest.raises(psycopg2.OperationalError) as ei:
        _q(m, user="scramuser", password="wrong")
    assert 'password authentication failed for user "scramuser"' in str(ei.value)


def test_server_login_failure_reported(pgmux_factory):
    """auth_file has a wrong password for md5user: the client login passes pgmux but the
    server login fails; the client gets PostgreSQL's error, and other users are unaffected."""
    ul = dict(USERS)
    ul["md5user"] = "not-the-real-one"
    m = pgmux_factory(settings={"auth_type": "plain"}, userlist=ul)
    with pytest.raises(psycopg2.OperationalError) as ei:
        c = m.connect(user="md5user", password="not-the-real-one")
        c.cursor().execute("SELECT 1")
    assert "password authentication failed" in str(ei.value)
    assert _q(m, user="testuser") == "testuser"
    assert m.alive()


def test_user_with_quotes_in_auth_file(pgmux_factory, pg):
    """auth_file escaping: a doubled quote inside a quoted field is one quote."""
    pg.sql("DROP ROLE IF EXISTS \"q\"\"user\"")
    pg.sql("SET password_encryption = 'scram-sha-256'; "
           "CREATE ROLE \"q\"\"user\" LOGIN PASSWORD 'pa\"ss'")
    try:
        m = pgmux_factory(settings={"auth_type": "scram-sha-256"}, userlist={}, start=False)
        with open(m.userlist_path, "w") as f:
            f.write('"testuser" "testpass"\n"q""user" "pa""ss"\n')
        m.start()
        c = m.connect(user='q"user', password='pa"ss', autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT current_user")
        assert cur.fetchone() == ('q"user',)
        c.close()
    finally:
        pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE usename = 'q\"user'")
        import time
        time.sleep(0.3)
        pg.sql("DROP ROLE IF EXISTS \"q\"\"user\"")


def test_many_scram_logins(pgmux_factory):
    """Repeated SCRAM logins (pgmux caches the derived keys for plain passwords; this checks
    that the cache gives correct results, including after a wrong password)."""
    m = pgmux_factory(settings={"auth_type": "scram-sha-256"})
    for i in range(30):
        if i % 7 == 3:
            with pytest.raises(psycopg2.OperationalError):
                m.connect(password="wrong%d" % i)
        else:
            assert _q(m) == "testuser"
