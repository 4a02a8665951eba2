"""Helpers for the TLS and HBA tests: certificates made with the openssl CLI, a PostgreSQL
with ssl=on, TLS clients on raw sockets (SSLRequest and direct TLS), psql with a conninfo
string, and the check that no test password or hash reached a pgmux log.

Certificates are EC P-256 (fast to make) and valid for two days. Keys that pgmux or
PostgreSQL read are owned by `postgres` with mode 0600; client keys stay root's (libpq
refuses group/world-readable keys of its own user).
"""

import hashlib
import os
import shutil
import socket
import ssl
import struct
import subprocess

from pgmux_helpers import (DBNAME, PG, PSQL, USERS, RawClient, _pw, make_owned_tmpdir,
                           wait_until)

SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT)


class Certs:
    """A folder with two CAs and leaf certificates signed by them."""

    def __init__(self):
        self.dir = make_owned_tmpdir("pgmux-certs-")
        self._serial = 1000

    def path(self, name):
        return os.path.join(self.dir, name)

    def make_ca(self, name, cn):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", name + ".key", "-out", name + ".crt", "-days", "2",
                 "-subj", "/CN=" + cn, cwd=self.dir)
        return self.path(name + ".crt")

    def make_leaf(self, name, cn, ca="ca", san=None, org=None, owner="postgres"):
        """Key + certificate signed by ca; san like 'DNS:localhost,IP:127.0.0.1'."""
        subj = "/CN=" + cn + ("/O=" + org if org else "")
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", subj,
                 cwd=self.dir)
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            if san:
                f.write("subjectAltName=%s\n" % san)
        self._serial += 1
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
                 "-set_serial", str(self._serial), "-out", name + ".crt", "-days", "2",
                 "-extfile", name + ".ext", cwd=self.dir)
        key = self.path(name + ".key")
        os.chmod(key, 0o600)
        if owner == "postgres":
            pw = _pw()
            for f in (key, self.path(name + ".crt")):
                os.chown(f, pw.pw_uid, pw.pw_gid)
        return self.path(name + ".crt"), key

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def standard_certs():
    """CA 'ca' (trusted) and 'ca2' (not), pgmux's and PostgreSQL's server certificates, a
    second pgmux certificate for rotation, and client certificates."""
    c = Certs()
    c.make_ca("ca", "pgmux test CA")
    c.make_ca("ca2", "unrelated CA")
    c.make_leaf("pgmux", "localhost", san="DNS:localhost,IP:127.0.0.1", org="first")
    c.make_leaf("pgmux2", "localhost", san="DNS:localhost,IP:127.0.0.1", org="rotated")
    c.make_leaf("pg", "localhost", san="DNS:localhost,IP:127.0.0.1")
    c.make_leaf("pg_wrongname", "db.example", san="DNS:db.example")
    c.make_leaf("client_testuser", "testuser", owner="root")
    c.make_leaf("client_alice", "alice", owner="root")
    c.make_leaf("client_bob", "bob", owner="root")
    c.make_leaf("client_rogue", "testuser", ca="ca2", owner="root")
    return c


def client_tls_settings(certs, mode="prefer", ca=True, cert="pgmux"):
    s = {"client_tls_sslmode": mode,
         "client_tls_key_file": certs.path(cert + ".key"),
         "client_tls_cert_file": certs.path(cert + ".crt")}
    if ca:
        s["client_tls_ca_file"] = certs.path("ca.crt")
    return s


class SSLPG(PG):
    """A second throwaway PostgreSQL with ssl=on and a certificate from the test CA."""

    def __init__(self, certs):
        super().__init__()
        self.certs = certs

    def init(self):
        super().init()
        for name in ("pg.crt", "pg.key", "pg_wrongname.crt", "pg_wrongname.key"):
            shutil.copy2(self.certs.path(name), os.path.join(self.datadir, name))
        pw = _pw()
        for name in ("pg.crt", "pg.key", "pg_wrongname.crt", "pg_wrongname.key"):
            p = os.path.join(self.datadir, name)
            os.chown(p, pw.pw_uid, pw.pw_gid)
            os.chmod(p, 0o600)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("ssl = on\nssl_cert_file = 'pg.crt'\nssl_key_file = 'pg.key'\n")
        self.restart()

    def use_cert(self, name):
        """Switch PostgreSQL to another certificate (reload: new connections see it)."""
        self.sql("ALTER SYSTEM SET ssl_cert_file = %s", [name + ".crt"])
        self.sql("ALTER SYSTEM SET ssl_key_file = %s", [name + ".key"])
        self.sql("SELECT pg_reload_conf()")


# --------------------------------------------------------------------------------------------
# TLS clients on raw sockets


def client_ssl_context(certs, alpn=None, certfile=None, keyfile=None, ca="ca"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs.path(ca + ".crt"))
    ctx.check_hostname = True
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


def tls_raw(port, ctx, direct=False, host="127.0.0.1", server_hostname="localhost",
            timeout=10.0):
    """A RawClient whose socket is TLS: after SSLRequest + 'S', or direct (no SSLRequest)."""
    r = RawClient(port, host=host, timeout=timeout)
    if not direct:
        r.send(SSL_REQUEST)
        answer = r.read_byte()
        if answer != b"S":
            r.close()
            raise AssertionError("SSLRequest answered %r" % answer)
    r.sock = ctx.wrap_socket(r.sock, server_hostname=server_hostname)
    return r


def peer_cert_org(r):
    """The O= of the certificate the server showed on a tls_raw() client."""
    cert = r.sock.getpeercert()
    for rdn in cert["subject"]:
        for k, v in rdn:
            if k == "organizationName":
                return v
    return None


# --------------------------------------------------------------------------------------------
# psql with a conninfo string


def psql_conninfo(conninfo, sql, password=None, timeout=60):
    """psql -X -A -t -c SQL "conninfo"; returns the CompletedProcess (text)."""
    env = dict(os.environ, PGCONNECT_TIMEOUT="10")
    env.pop("PGSSLMODE", None)
    if password is not None:
        env["PGPASSWORD"] = password
    else:
        env.pop("PGPASSWORD", None)
    cmd = [PSQL, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, timeout=timeout)


def first_auth_answer(port, user, database=DBNAME, host="127.0.0.1", ctx=None, unix_path=None):
    """Send a StartupMessage; return ('R', auth code) or ('E', message) for the first answer."""
    if unix_path:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(unix_path)
        r = RawClient.__new__(RawClient)
        r.sock, r.buf, r.params, r.backend_key, r.timeout = s, b"", {}, None, 10.0
    elif ctx is not None:
        r = tls_raw(port, ctx, host=host)
    else:
        r = RawClient(port, host=host)
    try:
        r.startup(user, database)
        t, body = r.read_msg()
        if t == b"R":
            return "R", struct.unpack("!i", body[:4])[0]
        if t == b"E":
            fields = {}
            for part in body.split(b"\0"):
                if part:
                    fields[chr(part[0])] = part[1:].decode(errors="replace")
            return "E", "%s %s" % (fields.get("C"), fields.get("M"))
        return t.decode(), body
    finally:
        r.close()


# --------------------------------------------------------------------------------------------
# Secrets must never reach a log


def secret_strings():
    out = []
    for u, p in USERS.items():
        out.append(p)
        out.append("md5" + hashlib.md5((p + u).encode()).hexdigest())
    return out


def assert_no_secrets(text, where="pgmux log"):
    for s in secret_strings():
        assert s not in text, "a test password or its hash appears in the %s" % where


def wait_reloaded(m, timeout=10):
    return m.wait_log(r"configuration reloaded", timeout)


__all__ = ["Certs", "SSLPG", "standard_certs", "client_tls_settings", "client_ssl_context",
           "tls_raw", "peer_cert_org", "psql_conninfo", "first_auth_answer",
           "assert_no_secrets", "wait_until", "SSL_REQUEST"]
