"""auth_type = hba (issue 4): local/host/hostssl/hostnossl lines, reject, trust/md5/
scram-sha-256/password per line, cert with the CN and through an ident map, peer on the Unix
socket, PostgreSQL's refusal texts, reload of the rules; auth_type = cert. No password or
hash may appear in any log."""

import os
import ssl

import psycopg2
import pytest

from pgmux_helpers import DBNAME, USERS, PgError
from tls_helpers import (assert_no_secrets, client_ssl_context, client_tls_settings,
                         first_auth_answer, psql_conninfo, standard_certs, tls_raw)

HBA = """\
# pgmux test rules
local     all       testuser                    peer map=rootmap
local     all       md5user                     peer
local     all       all                         scram-sha-256
hostssl   all       scramuser   127.0.0.1/32    cert map=certmap
hostnossl all       scramuser   127.0.0.1/32    reject
hostssl   all       md5user     127.0.0.1/32    scram-sha-256
hostnossl all       md5user     127.0.0.1       255.255.255.255   md5
host      postgres  testuser    127.0.0.1/32    trust
host      "p0"      testuser,plainuser 127.0.0.0/8  scram-sha-256
host      all       @others.txt ::1/128         password
"""

IDENT = """\
# MAPNAME  SYSTEM-USER  DB-USER
rootmap    root         testuser
certmap    alice        scramuser
"""


@pytest.fixture(scope="module")
def certs():
    c = standard_certs()
    yield c
    c.cleanup()


@pytest.fixture(autouse=True)
def no_secrets_in_logs(request, pgmux_factory):
    yield
    for m in getattr(request.node, "_pgmux_instances", []):
        assert_no_secrets(m.log())


def hba_pgmux(pgmux_factory, certs, hba=HBA, ident=IDENT, **settings):
    m = pgmux_factory(start=False, settings=dict(client_tls_settings(certs, "prefer"),
                                                 auth_type="hba", verbose="2", **settings))
    m.hba_path = os.path.join(m.dir, "hba.conf")
    m.write_file(m.hba_path, hba)
    m.write_file(os.path.join(m.dir, "others.txt"), "md5user\n")
    ident_path = os.path.join(m.dir, "ident.conf")
    m.write_file(ident_path, ident)
    m.settings["auth_hba_file"] = m.hba_path
    m.settings["auth_ident_file"] = ident_path
    m.write_config()
    return m.start()


def unix_path(m):
    return os.path.join(m.sockdir, ".s.PGSQL.%d" % m.port)


def login_error(fn):
    with pytest.raises(PgError) as e:
        fn()
    return "%s %s" % (e.value.sqlstate, e.value.message)


def test_host_lines_methods_and_rejects(pgmux_factory, certs):
    m = hba_pgmux(pgmux_factory, certs)
    # scram-sha-256 line; the quoted database name and the user list match.
    assert first_auth_answer(m.port, "testuser") == ("R", 10)
    r = m.raw()
    r.login("testuser")
    assert r.query("SELECT current_user") == [("testuser",)]
    r.close()
    # trust line for the postgres database.
    assert first_auth_answer(m.port, "testuser", database="postgres") == ("R", 0)
    r = m.raw()
    r.login("testuser", database="postgres", password="not used")
    assert r.query("SELECT current_database()") == [("postgres",)]
    r.close()
    # hostnossl md5 line (address + netmask column).
    assert first_auth_answer(m.port, "md5user") == ("R", 5)
    r = m.raw()
    r.login("md5user")
    r.close()
    assert login_error(lambda: m.raw().login("md5user", password="wrong")) == \
        '28P01 password authentication failed for user "md5user"'
    # Wrong password on the scram line: PostgreSQL's text.
    assert login_error(lambda: m.raw().login("testuser", password="wrong")) == \
        '28P01 password authentication failed for user "testuser"'
    # An explicit reject line, and no line at all.
    assert first_auth_answer(m.port, "scramuser") == (
        "E", '28000 pg_hba.conf rejects connection for host "127.0.0.1", user "scramuser", '
             'database "p0", no encryption')
    assert first_auth_answer(m.port, "nobody") == (
        "E", '28000 no pg_hba.conf entry for host "127.0.0.1", user "nobody", '
             'database "p0", no encryption')
    # psql shows the same.
    r = psql_conninfo("host=127.0.0.1 port=%d dbname=p0 user=scramuser sslmode=disable"
                      % m.port, "SELECT 1", password=USERS["scramuser"])
    assert r.returncode != 0 and "pg_hba.conf rejects connection" in r.stderr, r.stderr


def test_hostssl_lines_and_cert_auth(pgmux_factory, certs):
    m = hba_pgmux(pgmux_factory, certs)
    plain_tls = client_ssl_context(certs)
    # md5user over TLS: the hostssl scram line, not the hostnossl md5 one.
    assert first_auth_answer(m.port, "md5user", ctx=plain_tls) == ("R", 10)
    r = tls_raw(m.port, plain_tls)
    r.login("md5user")
    assert r.query("SELECT 1") == [("1",)]
    r.close()
    # scramuser: hostssl cert map=certmap. No certificate: refused.
    assert first_auth_answer(m.port, "scramuser", ctx=plain_tls) == (
        "E", "28000 connection requires a valid client certificate")
    # alice's certificate maps to scramuser: in without a password.
    alice = client_ssl_context(certs, certfile=certs.path("client_alice.crt"),
                               keyfile=certs.path("client_alice.key"))
    assert first_auth_answer(m.port, "scramuser", ctx=alice) == ("R", 0)
    r = tls_raw(m.port, alice)
    r.login("scramuser", password="")
    assert r.query("SELECT current_user") == [("scramuser",)]
    r.close()
    # bob's is valid but not in the map.
    bob = client_ssl_context(certs, certfile=certs.path("client_bob.crt"),
                             keyfile=certs.path("client_bob.key"))
    assert first_auth_answer(m.port, "scramuser", ctx=bob) == (
        "E", '28000 certificate authentication failed for user "scramuser"')
    m.wait_log(r'no match in usermap "certmap" for user "scramuser" authenticated as "bob"',
               since_mark=False)
    # A certificate from another CA does not get through the handshake.
    rogue = client_ssl_context(certs, certfile=certs.path("client_rogue.crt"),
                               keyfile=certs.path("client_rogue.key"))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        first_auth_answer(m.port, "scramuser", ctx=rogue)
    # No line for this user over TLS: PostgreSQL's "SSL encryption" wording.
    assert first_auth_answer(m.port, "nobody", ctx=plain_tls) == (
        "E", '28000 no pg_hba.conf entry for host "127.0.0.1", user "nobody", '
             'database "p0", SSL encryption')
    # psql with sslcert/sslkey through the cert line.
    r = psql_conninfo("host=localhost hostaddr=127.0.0.1 port=%d dbname=p0 user=scramuser "
                      "sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s"
                      % (m.port, certs.path("ca.crt"), certs.path("client_alice.crt"),
                         certs.path("client_alice.key")), "SELECT current_user")
    assert r.returncode == 0 and r.stdout.strip() == "scramuser", r.stderr


def test_local_lines_and_peer(pgmux_factory, certs):
    m = hba_pgmux(pgmux_factory, certs)
    path = unix_path(m)
    # The test runs as root; rootmap lets root in as testuser without a password.
    assert os.geteuid() == 0
    assert first_auth_answer(0, "testuser", unix_path=path) == ("R", 0)
    r = psql_conninfo("host=%s port=%d dbname=p0 user=testuser" % (m.sockdir, m.port),
                      "SELECT current_user")
    assert r.returncode == 0 and r.stdout.strip() == "testuser", r.stderr
    # peer without a map: root is not md5user.
    assert first_auth_answer(0, "md5user", unix_path=path) == (
        "E", '28000 Peer authentication failed for user "md5user"')
    m.wait_log(r"provided user name \(md5user\) and authenticated user name \(root\) do not "
               r"match", since_mark=False)
    # Other users on the Unix socket: the local scram line.
    assert first_auth_answer(0, "scramuser", unix_path=path) == ("R", 10)
    r = psql_conninfo("host=%s port=%d dbname=p0 user=scramuser" % (m.sockdir, m.port),
                      "SELECT current_user", password=USERS["scramuser"])
    assert r.returncode == 0 and r.stdout.strip() == "scramuser", r.stderr
    # No local line for the admin database of a user... all matches: scram.
    assert first_auth_answer(0, "nobody", unix_path=path) == ("R", 10)


def test_peer_map_to_other_users_is_refused(pgmux_factory, certs):
    ident = "rootmap root md5user\n"
    m = hba_pgmux(pgmux_factory, certs, hba="local all all peer map=rootmap\n", ident=ident)
    path = unix_path(m)
    assert first_auth_answer(0, "md5user", unix_path=path) == ("R", 0)
    assert first_auth_answer(0, "testuser", unix_path=path) == (
        "E", '28000 Peer authentication failed for user "testuser"')
    # TCP: no line at all.
    assert first_auth_answer(m.port, "md5user")[0] == "E"


def test_hba_reload(pgmux_factory, certs):
    m = hba_pgmux(pgmux_factory, certs)
    assert first_auth_answer(m.port, "testuser") == ("R", 10)
    m.write_file(m.hba_path, "host p0 testuser 127.0.0.1/32 reject\n" + HBA)
    m.mark_log()
    m.reload()
    m.wait_log("configuration reloaded")
    assert first_auth_answer(m.port, "testuser")[1].startswith(
        "28000 pg_hba.conf rejects connection")
    # A bad file keeps the rules in force and says why.
    m.write_file(m.hba_path, "host p0 testuser 127.0.0.1/32 ldap\n")
    m.mark_log()
    m.reload()
    m.wait_log(r"config reload failed, keeping the old configuration: auth_hba_file: .*hba.conf:1")
    assert first_auth_answer(m.port, "testuser")[1].startswith(
        "28000 pg_hba.conf rejects connection")
    m.write_file(m.hba_path, HBA)
    m.mark_log()
    m.reload()
    m.wait_log("configuration reloaded")
    assert first_auth_answer(m.port, "testuser") == ("R", 10)


def test_hba_startup_errors(pgmux_factory, certs):
    m = pgmux_factory(start=False, settings={"auth_type": "hba"})
    r = m.run_foreground()
    assert r.returncode != 0 and "auth_hba_file" in r.stdout + r.stderr
    m = pgmux_factory(start=False, settings={"auth_type": "hba",
                                             "auth_hba_file": "/nonexistent/hba.conf"})
    r = m.run_foreground()
    assert r.returncode != 0 and "/nonexistent/hba.conf" in r.stdout + r.stderr


def test_auth_type_cert(pgmux_factory, certs):
    m = pgmux_factory(settings=dict(client_tls_settings(certs, "verify-full"),
                                    auth_type="cert"))
    base = ("host=localhost hostaddr=127.0.0.1 port=%d dbname=p0 user=testuser "
            "sslmode=verify-full sslrootcert=%s" % (m.port, certs.path("ca.crt")))
    ok = psql_conninfo(base + " sslcert=%s sslkey=%s" % (certs.path("client_testuser.crt"),
                                                          certs.path("client_testuser.key")),
                       "SELECT current_user")
    assert ok.returncode == 0 and ok.stdout.strip() == "testuser", ok.stderr
    wrong = psql_conninfo(base + " sslcert=%s sslkey=%s" % (certs.path("client_alice.crt"),
                                                             certs.path("client_alice.key")),
                          "SELECT 1")
    assert wrong.returncode != 0
    assert 'certificate authentication failed for user "testuser"' in wrong.stderr
    # verify-full on the client side: no certificate, no handshake.
    nocert = psql_conninfo(base, "SELECT 1")
    assert nocert.returncode != 0
    # And no TLS at all: SSL required.
    plain = psql_conninfo("host=127.0.0.1 port=%d dbname=p0 user=testuser sslmode=disable"
                          % m.port, "SELECT 1")
    assert plain.returncode != 0 and "SSL required" in plain.stderr, plain.stderr
    # cert over the Unix socket (no TLS there): refused with PostgreSQL's text.
    assert first_auth_answer(0, "testuser", unix_path=unix_path(m)) == (
        "E", "28000 connection requires a valid client certificate")


def test_passwords_never_logged_at_any_verbosity(pgmux_factory, certs):
    """Logins that succeed and fail with every method at verbose=2; the autouse fixture
    checks the logs, this test also checks the log is not empty of debug lines."""
    m = hba_pgmux(pgmux_factory, certs)
    for user in USERS:
        for pw in (USERS[user], "wrong-" + USERS[user]):
            try:
                r = m.raw()
                r.login(user, password=pw)
                r.query("SELECT 1")
                r.close()
            except (PgError, ConnectionError):
                pass
            try:
                c = psycopg2.connect(host="127.0.0.1", port=m.port, dbname=DBNAME, user=user,
                                     password=pw, sslmode="require", connect_timeout=5)
                c.close()
            except psycopg2.OperationalError:
                pass
    assert "DEBUG" in m.log() or "TLS established" in m.log()


def test_reload_to_hba_with_a_bad_file_changes_nothing(pgmux_factory):
    """A reload that switches to auth_type = hba with an auth_hba_file that does not load
    fails as a whole: the running auth_type stays, so logins keep working."""
    m = pgmux_factory(settings={"auth_type": "scram-sha-256"})
    assert m.psql("SELECT 1") == "1"
    bad = os.path.join(m.dir, "bad_hba.conf")
    m.write_file(bad, "host all all 127.0.0.1/32 ldap\n")
    m.settings.update({"auth_type": "hba", "auth_hba_file": bad})
    m.write_config()
    m.mark_log()
    m.reload()
    m.wait_log(r"config reload failed, keeping the old configuration: auth_hba_file: "
               r".*bad_hba.conf:1")
    assert m.psql("SELECT 2") == "2"
