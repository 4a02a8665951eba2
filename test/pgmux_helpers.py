"""Helpers for the pgmux integration suite: a throwaway PostgreSQL, a pgmux process
started from a pgbouncer.ini-style file, a raw wire-protocol client, and small utilities.

Everything here talks to real processes: initdb/postgres run as the `postgres` user in a
temporary folder it owns, pgmux runs with `-u postgres`, and clients are psycopg2, psycopg 3,
psql, pgbench or the raw socket client below.
"""

import base64
import hashlib
import hmac
import os
import pwd
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import psycopg2

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
PSQL = os.path.join(PG_BIN, "psql") if os.path.exists(os.path.join(PG_BIN, "psql")) \
    else shutil.which("psql")
PGBENCH = os.path.join(PG_BIN, "pgbench") if os.path.exists(os.path.join(PG_BIN, "pgbench")) \
    else shutil.which("pgbench")
RUN_AS = "postgres"

# Roles created in the test cluster. testuser has a SCRAM secret, md5user an md5 one.
USERS = {
    "testuser": "testpass",
    "md5user": "md5pass",
    "scramuser": "scrampass",
}
DBNAME = "p0"

SANITIZE = bool(os.environ.get("PGMUX_SANITIZE"))


def _pw():
    return pwd.getpwnam(RUN_AS)


def chown_tree(path):
    pw = _pw()
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for f in files:
            os.chown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)


def make_owned_tmpdir(prefix):
    """A temp folder under /tmp that the `postgres` user owns (pytest's tmp_path is 0700 root)."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    pw = _pw()
    os.chown(d, pw.pw_uid, pw.pw_gid)
    return d


_used_ports = set()
_port_rng = random.Random(os.getpid() ^ int(time.time()))


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on now, never handed out twice per run.
    Taken below the kernel's ephemeral range (32768+), so that an outgoing connection cannot
    be sitting on it when PostgreSQL or pgmux binds it."""
    for _ in range(1000):
        port = _port_rng.randint(20000, 32000)
        if port in _used_ports:
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _used_ports.add(port)
        return port
    raise RuntimeError("no free port")


def wait_until(cond, timeout=10.0, interval=0.05, msg=None):
    """Poll cond() until it returns a truthy value; return it, or raise AssertionError."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - condition may fail while things settle
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(
                "timed out after %.1fs waiting for %s%s"
                % (timeout, msg or getattr(cond, "__name__", "condition"),
                   (" (last error: %r)" % last_exc) if last_exc else ""))
        time.sleep(interval)


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def md5_secret(user, password):
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


def scram_secret(password, salt=None, iterations=4096):
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b = lambda x: base64.b64encode(x).decode()  # noqa: E731
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, b(salt), b(stored), b(server_key))


# --------------------------------------------------------------------------------------------
# PostgreSQL


class PG:
    """A throwaway PostgreSQL 15 cluster on 127.0.0.1:<free port>, run as `postgres`."""

    def __init__(self):
        self.dir = make_owned_tmpdir("pgmux-pg-")
        self.datadir = os.path.join(self.dir, "data")
        self.sockdir = os.path.join(self.dir, "sock")
        self.logfile = os.path.join(self.dir, "postgres.log")
        self.port = free_port()
        self.host = "127.0.0.1"

    def _run(self, args, check=True, **kw):
        return subprocess.run(["runuser", "-u", RUN_AS, "--"] + args, check=check,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)

    def init(self):
        os.makedirs(self.sockdir, exist_ok=True)
        chown_tree(self.dir)
        self._run([os.path.join(PG_BIN, "initdb"), "-D", self.datadir, "-U", "postgres",
                   "--auth-local=trust", "--auth-host=md5", "-E", "UTF8", "--locale=C",
                   "--no-sync"])
        conf = os.path.join(self.datadir, "postgresql.conf")
        with open(conf, "a") as f:
            f.write("\n# pgmux test suite\n"
                    "listen_addresses = '127.0.0.1'\n"
                    "port = %d\n"
                    "unix_socket_directories = '%s'\n"
                    "max_connections = 200\n"
                    "fsync = off\n"
                    "synchronous_commit = off\n"
                    "full_page_writes = off\n"
                    "shared_buffers = 64MB\n"
                    "log_min_messages = warning\n"
                    "log_connections = off\n"
                    "password_encryption = 'scram-sha-256'\n" % (self.port, self.sockdir))
        # md5 on host lines: roles with SCRAM secrets get SCRAM, roles with md5 secrets get md5.
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("local all all trust\n"
                    "host all postgres 127.0.0.1/32 trust\n"
                    "host all all 127.0.0.1/32 md5\n")
        chown_tree(self.datadir)
        self.start()
        self.sql("SET password_encryption = 'scram-sha-256'; "
                 "CREATE ROLE testuser LOGIN PASSWORD 'testpass'; "
                 "CREATE ROLE scramuser LOGIN PASSWORD 'scrampass'; "
                 "SET password_encryption = 'md5'; "
                 "CREATE ROLE md5user LOGIN PASSWORD 'md5pass'; ")
        self.sql("CREATE DATABASE %s OWNER testuser" % DBNAME, autocommit=True)
        self.sql("GRANT ALL ON SCHEMA public TO PUBLIC", dbname=DBNAME)
        self.sql("GRANT ALL ON DATABASE %s TO PUBLIC" % DBNAME)

    def start(self):
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir, "-l", self.logfile,
                   "-w", "-t", "60", "start"])
        wait_until(lambda: self.accepting(), 30, msg="postgres accepting")

    def stop(self, mode="fast"):
        self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir, "-m", mode, "-w", "stop"],
                  check=False)

    def restart(self):
        self.stop()
        self.start()

    def running(self):
        r = self._run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.datadir, "status"], check=False)
        return r.returncode == 0

    def accepting(self):
        try:
            c = self.connect()
            c.close()
            return True
        except psycopg2.OperationalError:
            return False

    def connect(self, dbname="postgres", user="postgres", **kw):
        """Superuser connection over the Unix socket (trust), bypassing pgmux."""
        c = psycopg2.connect(host=self.sockdir, port=self.port, dbname=dbname, user=user,
                             connect_timeout=5, **kw)
        c.autocommit = True
        return c

    def connect_tcp(self, user="testuser", password=None, dbname=DBNAME, **kw):
        password = password if password is not None else USERS[user]
        return psycopg2.connect(host="127.0.0.1", port=self.port, dbname=dbname, user=user,
                                password=password, connect_timeout=5, **kw)

    def sql(self, query, args=None, dbname="postgres", autocommit=True):
        """Run SQL directly on PostgreSQL; return all rows (or None when there are none)."""
        c = self.connect(dbname=dbname)
        try:
            c.autocommit = autocommit
            with c.cursor() as cur:
                cur.execute(query, args)
                rows = cur.fetchall() if cur.description else None
            if not autocommit:
                c.commit()
            return rows
        finally:
            c.close()

    def scalar(self, query, args=None, dbname="postgres"):
        rows = self.sql(query, args, dbname=dbname)
        return rows[0][0]

    def backends(self, usenames=None, state=None):
        """Client backends from pg_stat_activity (default: all non-superuser test roles)."""
        usenames = list(usenames or USERS.keys())
        q = ("SELECT pid, usename, datname, state, application_name, query, backend_start "
             "FROM pg_stat_activity WHERE backend_type = 'client backend' "
             "AND usename = ANY(%s) AND pid <> pg_backend_pid()")
        args = [usenames]
        if state:
            q += " AND state = %s"
            args.append(state)
        return self.sql(q, args)

    def count_backends(self, usenames=None, state=None):
        return len(self.backends(usenames, state))

    def terminate(self, pid):
        return self.scalar("SELECT pg_terminate_backend(%s)", [pid])

    def cleanup(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Raw protocol client


class ProtocolError(Exception):
    pass


class PgError(Exception):
    def __init__(self, fields):
        self.fields = fields
        super().__init__("%s %s: %s" % (fields.get("S"), fields.get("C"), fields.get("M")))

    @property
    def sqlstate(self):
        return self.fields.get("C")

    @property
    def message(self):
        return self.fields.get("M")


def parse_error_fields(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


_scram_cache = {}


class RawClient:
    """A minimal PostgreSQL v3 client on a raw socket, for hostile and low-level tests."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        if host.startswith("/"):  # a Unix socket directory, as libpq takes it
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(os.path.join(host, ".s.PGSQL.%d" % port))
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.params = {}
        self.backend_key = None
        self.timeout = timeout

    # -- bytes
    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, n, timeout=None):
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("connection closed by peer")
            self.buf += chunk

    def read_byte(self, timeout=None):
        self._fill(1, timeout)
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def read_msg(self, timeout=None):
        """Return (type, body) of the next message."""
        self._fill(5, timeout)
        t = self.buf[:1]
        (length,) = struct.unpack("!i", self.buf[1:5])
        if length < 4:
            raise ProtocolError("bad length %d from server" % length)
        self._fill(1 + length, timeout)
        body = self.buf[5:1 + length]
        self.buf = self.buf[1 + length:]
        return t, body

    def wait_closed(self, timeout=5.0):
        """Read until EOF (or reset); return the messages seen before. Raises on timeout."""
        msgs = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("connection still open after %.1fs" % timeout)
            try:
                self.sock.settimeout(left)
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            except socket.timeout:
                raise TimeoutError("connection still open after %.1fs" % timeout)
            if not chunk:
                break
            self.buf += chunk
        while len(self.buf) >= 5:
            (length,) = struct.unpack("!i", self.buf[1:5])
            if length < 4 or len(self.buf) < 1 + length:
                break
            msgs.append((self.buf[:1], self.buf[5:1 + length]))
            self.buf = self.buf[1 + length:]
        return msgs

    def collect(self, timeout=5.0, stop_on=b"Z"):
        """Read messages until one of type stop_on, EOF/reset, or timeout.
        Returns (messages, how) with how in {"stop", "closed", "timeout"}."""
        msgs = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return msgs, "timeout"
            try:
                t, body = self.read_msg(timeout=left)
            except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
                return msgs, "closed"
            except socket.timeout:
                return msgs, "timeout"
            except ProtocolError:
                return msgs, "closed"
            msgs.append((t, body))
            if t == stop_on:
                return msgs, "stop"

    # -- messages
    @staticmethod
    def msg(t, body=b""):
        return t + struct.pack("!i", len(body) + 4) + body

    @staticmethod
    def startup_packet(params, proto=196608):
        body = struct.pack("!i", proto)
        for k, v in params.items():
            body += k.encode() + b"\0" + v.encode() + b"\0"
        body += b"\0"
        return struct.pack("!i", len(body) + 4) + body

    def startup(self, user, database=DBNAME, **extra):
        params = {"user": user, "database": database}
        params.update(extra)
        self.send(self.startup_packet(params))

    def login(self, user="testuser", password=None, database=DBNAME, hold=0.0, **extra):
        """Startup + auth; returns when ReadyForQuery arrives. Raises PgError on ErrorResponse.
        hold: seconds to wait before answering the first authentication request."""
        if password is None:
            password = USERS.get(user, "")
        self.startup(user, database, **extra)
        first = True
        scram = None
        while True:
            t, body = self.read_msg()
            if t == b"R":
                (code,) = struct.unpack("!i", body[:4])
                if code == 0:
                    continue
                if first and hold:
                    time.sleep(hold)
                first = False
                if code == 3:
                    self.send(self.msg(b"p", password.encode() + b"\0"))
                elif code == 5:
                    salt = body[4:8]
                    inner = hashlib.md5((password + user).encode()).hexdigest()
                    outer = "md5" + hashlib.md5(inner.encode() + salt).hexdigest()
                    self.send(self.msg(b"p", outer.encode() + b"\0"))
                elif code == 10:
                    mechs = body[4:].split(b"\0")
                    if b"SCRAM-SHA-256" not in mechs:
                        raise ProtocolError("no SCRAM-SHA-256 in %r" % mechs)
                    scram = _ScramClient(password)
                    first = scram.client_first().encode()
                    self.send(self.msg(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first))
                                       + first))
                elif code == 11:
                    self.send(self.msg(b"p", scram.client_final(body[4:].decode()).encode()))
                elif code == 12:
                    scram.verify(body[4:].decode())
                else:
                    raise ProtocolError("unsupported auth code %d" % code)
            elif t == b"S":
                k, v = body.split(b"\0")[:2]
                self.params[k.decode()] = v.decode()
            elif t == b"K":
                self.backend_key = body
            elif t == b"Z":
                return body
            elif t == b"E":
                raise PgError(parse_error_fields(body))
            elif t == b"N":
                continue
            else:
                raise ProtocolError("unexpected message %r during login" % t)

    def query(self, sql, timeout=None):
        """Simple query. Returns list of result rows (text, None for NULL) of all statements.
        Raises PgError if an ErrorResponse came (after reading up to ReadyForQuery)."""
        self.send(self.msg(b"Q", sql.encode() + b"\0"))
        return self.read_results(timeout)

    def read_results(self, timeout=None):
        rows, err = [], None
        while True:
            t, body = self.read_msg(timeout)
            if t == b"D":
                (n,) = struct.unpack("!h", body[:2])
                off, row = 2, []
                for _ in range(n):
                    (ln,) = struct.unpack("!i", body[off:off + 4])
                    off += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(body[off:off + ln].decode())
                        off += ln
                rows.append(tuple(row))
            elif t == b"E":
                err = PgError(parse_error_fields(body))
            elif t == b"S":
                k, v = body.split(b"\0")[:2]
                self.params[k.decode()] = v.decode()
            elif t == b"Z":
                if err:
                    raise err
                return rows
            # T, C, N, I, A, etc. are ignored


class _ScramClient:
    def __init__(self, password):
        self.password = password
        self.nonce = base64.b64encode(os.urandom(18)).decode()

    def client_first(self):
        self.first_bare = "n=,r=" + self.nonce
        return "n,," + self.first_bare

    def client_final(self, server_first):
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        r, s, i = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        if not r.startswith(self.nonce):
            raise ProtocolError("server nonce does not extend ours")
        key = (self.password, s, i)
        salted = _scram_cache.get(key)
        if salted is None:
            salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), s, i)
            _scram_cache[key] = salted
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored = hashlib.sha256(client_key).digest()
        without_proof = "c=biws,r=" + r
        auth_msg = ",".join([self.first_bare, server_first, without_proof]).encode()
        sig = hmac.new(stored, auth_msg, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.server_sig = base64.b64encode(hmac.new(server_key, auth_msg, "sha256").digest())
        return without_proof + ",p=" + base64.b64encode(proof).decode()

    def verify(self, server_final):
        if not server_final.startswith("v=") or server_final[2:].encode() != self.server_sig:
            raise ProtocolError("bad server signature: %r" % server_final)


# --------------------------------------------------------------------------------------------
# pgmux

SANITIZER_PATTERNS = [
    re.compile(r"ERROR: \w*Sanitizer"),
    re.compile(r"runtime error:"),
    re.compile(r"\bBUG\b"),
    re.compile(r"Assertion"),
    re.compile(r"SUMMARY: \w*Sanitizer"),
]


def default_userlist():
    return {u: p for u, p in USERS.items()}


class Pgmux:
    """One pgmux (or PgBouncer) process with its own folder, config, userlist and log."""

    def __init__(self, binary, pg, pool_mode="transaction", settings=None, databases=None,
                 users=None, userlist=None, extra_ini="", include_files=None):
        self.binary = binary
        self.pg = pg
        self.dir = make_owned_tmpdir("pgmux-run-")
        self.port = free_port()
        self.sockdir = os.path.join(self.dir, "sock")
        os.makedirs(self.sockdir)
        chown_tree(self.sockdir)
        self.ini = os.path.join(self.dir, "pgmux.ini")
        self.userlist_path = os.path.join(self.dir, "userlist.txt")
        self.logfile = os.path.join(self.dir, "pgmux.log")
        self.sanitizer_prefix = os.path.join(self.dir, "sanitizer")
        self.proc = None
        self.expect_exit = False
        self.log_offset = 0
        self.settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": self.sockdir,
            "auth_type": "scram-sha-256",
            "auth_file": self.userlist_path,
            "pool_mode": pool_mode,
            "default_pool_size": "5",
            "max_client_conn": "200",
            "server_login_retry": "1",
            "log_connections": "1",
            "log_disconnections": "1",
            "log_pooler_errors": "1",
            "server_lifetime": "3600",
            "server_idle_timeout": "600",
        }
        if settings:
            self.settings.update({k: str(v) for k, v in settings.items()})
        self.databases = databases if databases is not None else {
            DBNAME: "host=127.0.0.1 port=%d dbname=%s" % (pg.port, DBNAME),
            "postgres": "host=127.0.0.1 port=%d dbname=postgres" % pg.port,
        }
        self.users = users or {}
        self.userlist = userlist if userlist is not None else default_userlist()
        self.extra_ini = extra_ini
        self.write_config()

    # -- config
    def render_ini(self):
        lines = ["; generated by the pgmux test suite", "[databases]"]
        for name, cs in self.databases.items():
            lines.append("%s = %s" % (name, cs))
        if self.users:
            lines.append("")
            lines.append("[users]")
            for name, cs in self.users.items():
                lines.append("%s = %s" % (name, cs))
        lines.append("")
        lines.append("[pgbouncer]")
        for k, v in self.settings.items():
            lines.append("%s = %s" % (k, v))
        if self.extra_ini:
            lines.append(self.extra_ini)
        return "\n".join(lines) + "\n"

    def write_file(self, path, text):
        with open(path, "w") as f:
            f.write(text)
        pw = _pw()
        os.chown(path, pw.pw_uid, pw.pw_gid)

    def write_config(self):
        self.write_file(self.ini, self.render_ini())
        ul = "".join('"%s" "%s"\n' % (u, p) for u, p in self.userlist.items())
        self.write_file(self.userlist_path, ul)

    # -- process
    def env(self):
        env = dict(os.environ)
        if SANITIZE:
            # Sanitizer reports go to files in our folder (as well as the fixture checking the
            # log): pgmux runs as `postgres` after -u, and owns this folder.
            for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
                base = env.get(var, "")
                env[var] = (base + ":" if base else "") + "log_path=" + self.sanitizer_prefix
            env["UBSAN_OPTIONS"] += ":print_stacktrace=1"
        return env

    def start(self, wait=True, args=None):
        self.logf = open(self.logfile, "ab")
        cmd = [self.binary] + (args or []) + ["-u", RUN_AS, self.ini]
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env(), cwd=self.dir)
        self.pid = self.proc.pid
        if wait:
            def up():
                if self.proc.poll() is not None:
                    raise AssertionError("pgmux exited with %s during startup:\n%s"
                                         % (self.proc.returncode, self.log()))
                return port_open(self.port)
            try:
                wait_until(up, 15, msg="pgmux listening on %d" % self.port)
            except AssertionError as e:
                if self.proc.poll() is not None:
                    raise AssertionError("pgmux exited with %s during startup:\n%s"
                                         % (self.proc.returncode, self.log())) from e
                raise
        return self

    def run_foreground(self, args=None, timeout=10):
        """Run the binary to completion (for config errors); return CompletedProcess."""
        cmd = [self.binary] + (args or []) + ["-u", RUN_AS, self.ini]
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout, env=self.env(), cwd=self.dir)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        os.kill(self.pid, sig)

    def reload(self):
        self.signal(signal.SIGHUP)

    def stop(self, timeout=10):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGQUIT)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.logf.close()
        return self.proc.returncode

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def mark_log(self):
        """Remember the current end of the log; new_log() returns what was written after."""
        self.log_offset = len(self.log())

    def new_log(self):
        return self.log()[self.log_offset:]

    def wait_log(self, pattern, timeout=10, since_mark=True):
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.new_log() if since_mark else self.log()),
                          timeout, msg="log line matching %r" % pattern)

    def sanitizer_reports(self):
        out = []
        d = os.path.dirname(self.sanitizer_prefix)
        for name in sorted(os.listdir(d)):
            if name.startswith("sanitizer"):
                with open(os.path.join(d, name), errors="replace") as f:
                    txt = f.read()
                if txt.strip():
                    out.append("%s:\n%s" % (name, txt))
        return out

    def secrets(self):
        """Passwords and secrets this instance knows (auth file, the test roles' md5 hashes,
        forced passwords in [databases]): none may ever appear in its log."""
        out = set()
        for user, secret in list(self.userlist.items()) + list(USERS.items()):
            out.add(secret)
            if not secret.startswith(("md5", "SCRAM-SHA-256$")):
                out.add(md5_secret(user, secret))
            else:
                # each part of a verifier (salt excepted: it is public in the exchange)
                out.update(x for x in re.split(r"[$:]", secret)[2:] if len(x) >= 20)
        for cs in self.databases.values():
            m = re.search(r"\bpassword=(\S+)", cs)
            if m:
                out.add(m.group(1).strip("'"))
        return {x for x in out if len(x) >= 6}

    def problems(self):
        """Sanitizer / assertion / BUG lines found in the log and sanitizer files, and any
        password or secret in the log."""
        found = []
        log = self.log()
        for line in log.splitlines():
            if any(p.search(line) for p in SANITIZER_PATTERNS):
                found.append(line)
        for rep in self.sanitizer_reports():
            found.append(rep)
        for secret in self.secrets():
            if secret in log:
                found.append("a password or secret from the auth file or config is in the "
                             "log (%d characters)" % len(secret))
        return found

    def rss_kb(self):
        return rss_kb(self.pid)

    # -- clients
    def dsn(self, dbname=DBNAME, user="testuser", password=None):
        password = password if password is not None else USERS.get(user, "")
        return "host=127.0.0.1 port=%d dbname=%s user=%s password=%s" % (
            self.port, dbname, user, password)

    def connect(self, dbname=DBNAME, user="testuser", password=None, autocommit=False, **kw):
        """psycopg2 connection through pgmux (simple query protocol)."""
        password = password if password is not None else USERS.get(user, "")
        kw.setdefault("connect_timeout", 10)
        c = psycopg2.connect(host="127.0.0.1", port=self.port, dbname=dbname, user=user,
                             password=password, **kw)
        c.autocommit = autocommit
        return c

    def connect3(self, dbname=DBNAME, user="testuser", password=None, autocommit=True, **kw):
        """psycopg 3 connection through pgmux: extended protocol, unnamed statements."""
        import psycopg
        password = password if password is not None else USERS.get(user, "")
        kw.setdefault("connect_timeout", 10)
        c = psycopg.connect(host="127.0.0.1", port=self.port, dbname=dbname, user=user,
                            password=password, autocommit=autocommit, **kw)
        c.prepare_threshold = None
        return c

    def raw(self, timeout=10.0):
        return RawClient(self.port, timeout=timeout)

    def psql(self, sql, dbname=DBNAME, user="testuser", password=None, timeout=60, check=True,
             extra_args=None):
        """Run psql -X -A -t -c SQL through pgmux; return stdout (stripped)."""
        password = password if password is not None else USERS.get(user, "")
        env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="10")
        cmd = [PSQL, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
               "-p", str(self.port), "-U", user, "-d", dbname] + (extra_args or []) + ["-c", sql]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("psql failed (%d): %s" % (r.returncode, r.stderr))
        return r.stdout.strip() if check else r

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)
