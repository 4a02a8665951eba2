"""TLS on both sides of pgmux (issue 4): psql with verify-full through pgmux, require without
TLS refused, plaintext after SSLRequest refused, PostgreSQL 17 direct TLS (ALPN postgresql),
server_tls_sslmode verify-full against a PostgreSQL with ssl=on (pg_stat_ssl), wrong CA and
wrong host name, certificate rotation with SIGHUP, and no password in any log."""

import os
import signal
import socket
import ssl
import struct
import time

import psycopg2
import pytest

from pgmux_helpers import DBNAME, SANITIZE, USERS, RawClient, _pw, wait_until
from tls_helpers import (SSL_REQUEST, SSLPG, assert_no_secrets, client_ssl_context,
                         client_tls_settings, peer_cert_org, psql_conninfo, standard_certs,
                         tls_raw)


@pytest.fixture(scope="module")
def certs():
    c = standard_certs()
    yield c
    c.cleanup()


@pytest.fixture(scope="module")
def pg_ssl(certs):
    p = SSLPG(certs)
    p.init()
    yield p
    p.cleanup()


@pytest.fixture(autouse=True)
def no_secrets_in_logs(request, pgmux_factory):
    """After each test (before the factory removes the folders): no password or md5 hash in
    any pgmux log of the test."""
    yield
    for m in getattr(request.node, "_pgmux_instances", []):
        assert_no_secrets(m.log())


def ssl_db(pg):
    return {DBNAME: "host=127.0.0.1 port=%d dbname=%s" % (pg.port, DBNAME),
            "postgres": "host=127.0.0.1 port=%d dbname=postgres" % pg.port}


def conninfo(m, certs, sslmode="verify-full", host="localhost", user="testuser", **extra):
    parts = ["host=%s" % host, "hostaddr=127.0.0.1", "port=%d" % m.port, "dbname=" + DBNAME,
             "user=" + user, "sslmode=" + sslmode, "sslrootcert=" + certs.path("ca.crt")]
    parts += ["%s=%s" % kv for kv in extra.items()]
    return " ".join(parts)


# --------------------------------------------------------------------------------------------
# Client side


def test_psql_verify_full_through_pgmux(pgmux_factory, certs):
    m = pgmux_factory(settings=dict(client_tls_settings(certs, "require", ca=False),
                                    verbose="2"))
    r = psql_conninfo(conninfo(m, certs), "\\conninfo", password=USERS["testuser"])
    assert r.returncode == 0, r.stderr
    assert "SSL connection (protocol: TLSv1.3" in r.stdout, r.stdout
    r = psql_conninfo(conninfo(m, certs), "SELECT 40 + 2", password=USERS["testuser"])
    assert r.returncode == 0 and r.stdout.strip() == "42", r.stderr
    m.wait_log(r"login attempt: db=p0 user=testuser tls=TLSv1\.3/", since_mark=False)
    # The host name is checked: a name the certificate does not carry fails in libpq.
    r = psql_conninfo(conninfo(m, certs, host="wrong.example"), "SELECT 1",
                      password=USERS["testuser"])
    assert r.returncode != 0
    assert "does not match host name" in r.stderr, r.stderr
    # A CA that did not sign pgmux's certificate fails too.
    bad = conninfo(m, certs).replace(certs.path("ca.crt"), certs.path("ca2.crt"))
    r = psql_conninfo(bad, "SELECT 1", password=USERS["testuser"])
    assert r.returncode != 0 and "certificate verify failed" in r.stderr, r.stderr
    assert m.alive()


def test_psql_sslmode_require_and_big_results(pgmux_factory, certs):
    """sslmode=require; results larger than a TLS record and than pgmux's buffer go through
    intact in both directions (SSL_pending draining, partial writes)."""
    m = pgmux_factory(settings=client_tls_settings(certs, "prefer"))
    r = psql_conninfo(conninfo(m, certs, sslmode="require"),
                      "SELECT md5(string_agg(repeat(i::text, 50), ',')) "
                      "FROM generate_series(1, 20000) i", password=USERS["testuser"])
    assert r.returncode == 0, r.stderr
    want = psql_conninfo(conninfo(m, certs, sslmode="disable"),
                         "SELECT md5(string_agg(repeat(i::text, 50), ',')) "
                         "FROM generate_series(1, 20000) i", password=USERS["testuser"])
    assert want.returncode == 0 and r.stdout == want.stdout
    c = psycopg2.connect(conninfo(m, certs, sslmode="verify-full"), password=USERS["testuser"])
    c.autocommit = True
    cur = c.cursor()
    big = "x" * 300000
    cur.execute("SELECT length(%s), %s", (big, big))
    n, echo = cur.fetchone()
    assert n == len(big) and echo == big
    cur.execute("SELECT string_agg(i::text, ',') FROM generate_series(1, 100000) i")
    assert cur.fetchone()[0].endswith(",100000")
    c.close()


def test_require_refuses_plain_tcp_but_not_unix(pgmux_factory, certs):
    m = pgmux_factory(settings=client_tls_settings(certs, "require", ca=False))
    r = psql_conninfo(conninfo(m, certs, sslmode="disable"), "SELECT 1",
                      password=USERS["testuser"])
    assert r.returncode != 0
    assert "SSL required" in r.stderr, r.stderr
    raw = m.raw()
    raw.startup("testuser")
    t, body = raw.read_msg()
    assert t == b"E" and b"C28000\0" in body and b"SSL required" in body
    raw.close()
    # Unix sockets are exempt, and get 'N' to an SSLRequest.
    r = psql_conninfo("host=%s port=%d dbname=%s user=testuser sslmode=prefer"
                      % (m.sockdir, m.port, DBNAME), "SELECT 'unix ok'",
                      password=USERS["testuser"])
    assert r.returncode == 0 and r.stdout.strip() == "unix ok", r.stderr
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(os.path.join(m.sockdir, ".s.PGSQL.%d" % m.port))
    s.sendall(SSL_REQUEST)
    assert s.recv(1) == b"N"
    s.close()


def test_plaintext_after_ssl_request_refused(pgmux_factory, certs):
    m = pgmux_factory(settings=client_tls_settings(certs, "prefer"))
    m.mark_log()
    r = m.raw()
    # SSLRequest and a StartupMessage in one segment: the startup did not come through TLS.
    r.send(SSL_REQUEST + RawClient.startup_packet({"user": "testuser", "database": DBNAME}))
    msgs = r.wait_closed(5)
    assert msgs and msgs[0][0] == b"E", msgs
    assert b"received unencrypted data after SSL request" in msgs[0][1]
    r.close()
    m.wait_log(r"unencrypted data after SSLRequest.*man-in-the-middle")
    # TLS disabled: 'N', and pipelined bytes are the plain startup, as before.
    m2 = pgmux_factory()
    r = m2.raw()
    r.send(SSL_REQUEST)
    assert r.read_byte() == b"N"
    r.login()
    assert r.query("SELECT 1") == [("1",)]
    r.close()


def test_ssl_request_then_tls_login_raw(pgmux_factory, certs):
    m = pgmux_factory(settings=client_tls_settings(certs, "prefer"))
    r = tls_raw(m.port, client_ssl_context(certs))
    r.login()
    assert r.query("SELECT 'over tls'") == [("over tls",)]
    # A second SSLRequest inside TLS is refused.
    r.send(SSL_REQUEST)
    r.close()
    r = tls_raw(m.port, client_ssl_context(certs))
    r.send(SSL_REQUEST)
    msgs = r.wait_closed(5)
    assert msgs and b"SSLRequest on an encrypted connection" in msgs[0][1]
    r.close()


def test_direct_tls_with_alpn(pgmux_factory, certs):
    m = pgmux_factory(settings=client_tls_settings(certs, "require", ca=False))
    ctx = client_ssl_context(certs, alpn=["postgresql"])
    r = tls_raw(m.port, ctx, direct=True)
    assert r.sock.selected_alpn_protocol() == "postgresql"
    r.login()
    assert r.query("SELECT 'direct'") == [("direct",)]
    r.close()
    # Without ALPN the handshake completes, then pgmux refuses (as PostgreSQL 17 does).
    m.mark_log()
    r = tls_raw(m.port, client_ssl_context(certs), direct=True)
    with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
        r.login()
    r.close()
    m.wait_log(r"without ALPN")
    # With ALPN that does not include postgresql: the handshake fails.
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        r = tls_raw(m.port, client_ssl_context(certs, alpn=["http/1.1"]), direct=True)
        r.login()
    assert m.alive()


def test_direct_tls_refused_when_tls_is_off(pgmux_factory, certs):
    m = pgmux_factory()
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        r = tls_raw(m.port, client_ssl_context(certs, alpn=["postgresql"]), direct=True)
        r.login()
    r = m.raw()
    r.login()
    r.close()


def test_tls_handshake_garbage_and_silence(pgmux_factory, certs):
    """Garbage after 'S', a truncated ClientHello, a client that stops mid-handshake: each
    costs only its own connection."""
    m = pgmux_factory(settings=dict(client_tls_settings(certs, "prefer"),
                                    client_login_timeout="2"))
    r = m.raw()
    r.send(SSL_REQUEST)
    assert r.read_byte() == b"S"
    r.send(b"GET / HTTP/1.0\r\n\r\n")
    r.wait_closed(5)
    r.close()
    hello = socket.create_connection(("127.0.0.1", m.port))
    hello.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    silent = socket.create_connection(("127.0.0.1", m.port))
    silent.sendall(SSL_REQUEST)
    assert silent.recv(1) == b"S"
    r = tls_raw(m.port, client_ssl_context(certs))
    r.login()
    assert r.query("SELECT 2") == [("2",)]
    r.close()
    for s in (hello, silent):
        s.settimeout(10)
        assert s.recv(100) == b""  # client_login_timeout closes them
        s.close()
    assert m.alive()


def test_show_clients_tls_column(pgmux_factory, certs):
    m = pgmux_factory(settings=dict(client_tls_settings(certs, "prefer"),
                                    admin_users="testuser"))
    r = tls_raw(m.port, client_ssl_context(certs))
    r.login()
    a = m.raw()
    a.login(database="pgbouncer")
    rows = a.query("SHOW CLIENTS")
    a.close()
    tls_values = [v for row in rows for v in row if v and v.startswith("TLSv1.3/")]
    assert len(tls_values) == 1, rows
    r.close()


def test_admin_console_over_tls(pgmux_factory, certs):
    m = pgmux_factory(settings=dict(client_tls_settings(certs, "require", ca=False),
                                    admin_users="testuser"))
    r = psql_conninfo(conninfo(m, certs).replace("dbname=" + DBNAME, "dbname=pgbouncer"),
                      "SHOW VERSION", password=USERS["testuser"])
    assert r.returncode == 0 and "pgmux" in r.stdout.lower() + r.stdout, r.stderr


@pytest.mark.parametrize("pool_mode", ["session", "transaction"])
def test_many_tls_clients_pipelined(pgmux_factory, certs, pool_mode):
    m = pgmux_factory(pool_mode=pool_mode, settings=dict(client_tls_settings(certs, "prefer"),
                                                         default_pool_size="25"))
    conns = []
    for i in range(20):
        c = psycopg2.connect(conninfo(m, certs), password=USERS["testuser"])
        c.autocommit = True
        conns.append(c)
    for round_ in range(3):
        for i, c in enumerate(conns):
            cur = c.cursor()
            cur.execute("SELECT %s, repeat('y', 20000)", (i * 100 + round_,))
            v, y = cur.fetchone()
            assert v == i * 100 + round_ and len(y) == 20000
    for c in conns:
        c.close()


# --------------------------------------------------------------------------------------------
# Server side


def test_server_verify_full_pg_stat_ssl(pgmux_factory, pg_ssl, certs):
    m = pgmux_factory(databases=ssl_db(pg_ssl),
                      settings=dict(client_tls_settings(certs, "prefer"),
                                    server_tls_sslmode="verify-full",
                                    server_tls_ca_file=certs.path("ca.crt")))
    c = psycopg2.connect(conninfo(m, certs), password=USERS["testuser"])
    cur = c.cursor()
    cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    on, version = cur.fetchone()
    assert on is True and version.startswith("TLSv1")
    # Large messages both ways through TLS on both sides.
    big = "z" * 250000
    cur.execute("SELECT length(%s), %s, string_agg(i::text, ',') FROM generate_series(1, 50000) i",
                (big, big))
    n, echo, agg = cur.fetchone()
    assert n == len(big) and echo == big and agg.endswith(",50000")
    c.commit()
    c.close()
    rows = pg_ssl.sql("SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                      "WHERE a.usename = 'testuser'")
    assert rows and all(r[0] for r in rows), rows
    # SHOW SERVERS shows the TLS parameters of the server connection.
    m.settings["admin_users"] = "testuser"
    m.write_config()
    m.reload()
    time.sleep(0.3)
    a = m.raw()
    a.login(database="pgbouncer")
    rows = a.query("SHOW SERVERS")
    a.close()
    assert any(v and v.startswith("TLSv1") for row in rows for v in row), rows


def test_server_wrong_ca_fails_clearly(pgmux_factory, pg_ssl, certs):
    m = pgmux_factory(databases=ssl_db(pg_ssl),
                      settings={"server_tls_sslmode": "verify-ca",
                                "server_tls_ca_file": certs.path("ca2.crt"),
                                "query_wait_timeout": "10"})
    t0 = time.monotonic()
    with pytest.raises(psycopg2.OperationalError) as e:
        m.connect()
    assert "certificate verify failed" in str(e.value), str(e.value)
    assert time.monotonic() - t0 < 8  # told at once, not after query_wait_timeout
    m.wait_log(r"TLS handshake with server failed: certificate verify failed", since_mark=False)


def test_server_verify_full_wrong_host_name(pgmux_factory, pg_ssl, certs):
    pg_ssl.use_cert("pg_wrongname")
    try:
        m = pgmux_factory(databases=ssl_db(pg_ssl),
                          settings={"server_tls_sslmode": "verify-full",
                                    "server_tls_ca_file": certs.path("ca.crt")})
        with pytest.raises(psycopg2.OperationalError) as e:
            m.connect()
        assert 'does not match host name "127.0.0.1"' in str(e.value), str(e.value)
        # verify-ca does not check the name.
        m.settings["server_tls_sslmode"] = "verify-ca"
        m.write_config()
        m.mark_log()
        m.reload()
        m.wait_log("configuration reloaded")
        wait_until(lambda: m.connect().close() is None, 5, msg="login with verify-ca")
    finally:
        pg_ssl.use_cert("pg")


def test_server_require_against_plain_server(pgmux_factory, pg):
    m = pgmux_factory(settings={"server_tls_sslmode": "require"})
    with pytest.raises(psycopg2.OperationalError) as e:
        m.connect()
    assert "server does not support SSL, but SSL was required" in str(e.value)
    # prefer falls back to plain text on 'N'.
    m2 = pgmux_factory(settings={"server_tls_sslmode": "prefer"})
    c = m2.connect()
    cur = c.cursor()
    cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert cur.fetchone()[0] is False
    c.close()


def test_server_plaintext_after_s_refused(pgmux_factory, certs):
    """A fake server answers 'S' followed by plaintext bytes: refused."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    import threading

    def serve():
        for _ in range(3):
            try:
                c, _ = srv.accept()
            except OSError:
                return
            c.recv(8)
            c.sendall(b"SR\0\0\0\x08\0\0\0\0")
            time.sleep(0.5)
            c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    m = pgmux_factory(databases={DBNAME: "host=127.0.0.1 port=%d dbname=x" % port},
                      settings={"server_tls_sslmode": "prefer", "query_wait_timeout": "2"})
    with pytest.raises(psycopg2.OperationalError) as e:
        m.connect()
    assert "unencrypted data after SSL response" in str(e.value) or \
        "unencrypted data after SSL response" in m.log()
    srv.close()


# --------------------------------------------------------------------------------------------
# Reload and rotation


def install_live(certs, name):
    """Copy name.crt/.key over live.crt/.key, readable by pgmux (user postgres)."""
    for ext in ("crt", "key"):
        with open(certs.path(name + "." + ext), "rb") as src:
            data = src.read()
        dst = certs.path("live." + ext)
        with open(dst, "wb") as f:
            f.write(data)
        os.chmod(dst, 0o600)
        pw = _pw()
        os.chown(dst, pw.pw_uid, pw.pw_gid)


def test_certificate_rotation_with_sighup(pgmux_factory, pg_ssl, certs):
    tls = client_tls_settings(certs, "require", cert="live")
    # pgmux reads "live.crt"/"live.key": start with the first certificate.
    install_live(certs, "pgmux")
    m = pgmux_factory(databases=ssl_db(pg_ssl),
                      settings=dict(tls, server_tls_sslmode="verify-full",
                                    server_tls_ca_file=certs.path("ca.crt")))
    old = tls_raw(m.port, client_ssl_context(certs))
    assert peer_cert_org(old) == "first"
    old.login()
    assert old.query("SELECT 'before'") == [("before",)]
    old_pg = psycopg2.connect(conninfo(m, certs), password=USERS["testuser"])
    old_pg.autocommit = True

    install_live(certs, "pgmux2")
    m.mark_log()
    m.reload()
    m.wait_log("configuration reloaded")
    assert "recycling server connections" not in m.new_log()  # server TLS settings unchanged

    new = tls_raw(m.port, client_ssl_context(certs))
    assert peer_cert_org(new) == "rotated"
    new.login()
    assert new.query("SELECT 'new'") == [("new",)]
    # The old connections kept their TLS session and work as before.
    assert old.query("SELECT 'still here'") == [("still here",)]
    cur = old_pg.cursor()
    cur.execute("SELECT 7")
    assert cur.fetchone() == (7,)

    # A broken file on reload: the running certificate stays, the log says why.
    with open(certs.path("live.crt"), "w") as f:
        f.write("not a certificate\n")
    m.mark_log()
    m.reload()
    m.wait_log(r"config reload failed, keeping the old configuration: client TLS: "
               r"client_tls_cert_file")
    again = tls_raw(m.port, client_ssl_context(certs))
    assert peer_cert_org(again) == "rotated"
    again.login()
    assert again.query("SELECT 1") == [("1",)]
    for r in (old, new, again):
        r.close()
    old_pg.close()


def test_server_tls_change_recycles_servers(pgmux_factory, pg_ssl, certs):
    m = pgmux_factory(pool_mode="session", databases=ssl_db(pg_ssl),
                      settings={"server_tls_sslmode": "disable"})
    c = m.connect()
    cur = c.cursor()
    cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert cur.fetchone()[0] is False
    c.commit()
    c.close()
    m.settings.update(server_tls_sslmode="verify-full", server_tls_ca_file=certs.path("ca.crt"))
    m.write_config()
    m.mark_log()
    m.reload()
    m.wait_log("server TLS settings changed, recycling server connections")
    c = m.connect()
    cur = c.cursor()
    cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert cur.fetchone()[0] is True
    c.commit()
    c.close()


def test_startup_fails_on_bad_tls_files(pgmux_factory, certs):
    m = pgmux_factory(settings={"client_tls_sslmode": "require",
                                "client_tls_key_file": certs.path("pgmux.key"),
                                "client_tls_cert_file": "/nonexistent/cert.pem"},
                      start=False)
    r = m.run_foreground()
    assert r.returncode != 0
    assert "client_tls_cert_file" in r.stderr + r.stdout


def test_client_tls_turned_on_by_reload(pgmux_factory, certs):
    m = pgmux_factory()
    r = m.raw()
    r.send(SSL_REQUEST)
    assert r.read_byte() == b"N"
    r.close()
    m.settings.update(client_tls_settings(certs, "prefer"))
    m.write_config()
    m.mark_log()
    m.reload()
    m.wait_log("configuration reloaded")
    r = tls_raw(m.port, client_ssl_context(certs))
    r.login()
    assert r.query("SELECT 'now tls'") == [("now tls",)]
    r.close()
    # And off again: 'N'.
    m.settings["client_tls_sslmode"] = "disable"
    m.write_config()
    m.mark_log()
    m.reload()
    m.wait_log("configuration reloaded")
    r = m.raw()
    r.send(SSL_REQUEST)
    assert r.read_byte() == b"N"
    r.close()


def test_cancel_request_for_tls_client(pgmux_factory, pg_ssl, certs):
    m = pgmux_factory(databases=ssl_db(pg_ssl),
                      settings=dict(client_tls_settings(certs, "require"),
                                    server_tls_sslmode="require"))
    c = psycopg2.connect(conninfo(m, certs), password=USERS["testuser"])
    import threading
    t = threading.Timer(0.5, c.cancel)
    t.start()
    cur = c.cursor()
    t0 = time.monotonic()
    with pytest.raises(psycopg2.errors.QueryCanceled):
        cur.execute("SELECT pg_sleep(20)")
    assert time.monotonic() - t0 < 10
    c.rollback()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    c.close()


@pytest.mark.parametrize("protocol", ["simple", "extended", "prepared"])
def test_pgbench_tls_both_sides(pgmux_factory, pg_ssl, certs, protocol):
    """pgbench through TLS on both sides (transaction mode, pipelined extended protocol)."""
    import subprocess
    from pgmux_helpers import PGBENCH
    m = pgmux_factory(databases=ssl_db(pg_ssl),
                      settings=dict(client_tls_settings(certs, "require"),
                                    server_tls_sslmode="verify-full",
                                    server_tls_ca_file=certs.path("ca.crt")))
    env = dict(os.environ, PGPASSWORD=USERS["testuser"], PGSSLMODE="require")
    r = subprocess.run([PGBENCH, "-n", "-c", "10", "-j", "2", "-T", "3", "-M", protocol,
                        "-f", "/dev/stdin", "-h", "127.0.0.1", "-p", str(m.port),
                        "-U", "testuser", DBNAME],
                       input="SELECT repeat('x', 30000), :client_id;\n", env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "number of failed transactions: 0" in r.stdout or "failed" not in r.stdout, r.stdout
    assert int(__import__("re").search(r"processed: (\d+)", r.stdout).group(1)) > 50


def test_tls_slow_reader_backpressure(pgmux_factory, pg_ssl, certs):
    """A TLS client that does not read a 30 MB result: pgmux stops reading the (TLS) server
    instead of buffering, and everything arrives intact once the client reads."""
    m = pgmux_factory(databases=ssl_db(pg_ssl),
                      settings=dict(client_tls_settings(certs, "prefer"),
                                    server_tls_sslmode="require"))
    r = tls_raw(m.port, client_ssl_context(certs), timeout=60)
    r.login()
    rss0 = m.rss_kb()
    r.send(RawClient.msg(b"Q", b"SELECT repeat(chr(65 + i % 26), 1000) "
                               b"FROM generate_series(0, 29999) i\0"))
    time.sleep(2)
    # (ASan's quarantine keeps OpenSSL's freed record buffers: RSS says nothing there.)
    assert SANITIZE or m.rss_kb() - rss0 < 8000, "pgmux buffered the result"
    rows = r.read_results(timeout=60)
    assert len(rows) == 30000
    assert all(row[0] == chr(65 + i % 26) * 1000 for i, row in enumerate(rows))
    assert r.query("SELECT 'after'") == [("after",)]
    r.close()
