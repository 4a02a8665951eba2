"""Unit tests of the container entrypoint's environment -> pgmux.ini translation.

No container is involved: contrib/docker/entrypoint.sh runs on the host with a
stub `pgmux` first in PATH (it records the arguments it was exec'd with), and
PGMUX_RUN_DIR / PGMUX_CONFIG / PGMUX_KEYS_FILE pointing into a temporary folder.
When a C compiler and the libraries are present, the generated files are also
loaded with pgmux's own parser (src/config.c, src/authfile.c) through a small
checker program built at test time.

    /usr/bin/python3 -m pytest --noconftest test/test_entrypoint.py
(--noconftest because test/conftest.py wants a built pgmux for the integration suite.)
"""

import os
import shutil
import stat
import subprocess
import textwrap
import urllib.parse

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENTRYPOINT = os.path.join(ROOT, "contrib", "docker", "entrypoint.sh")
LIST_KEYS = os.path.join(ROOT, "contrib", "docker", "list-config-keys.sh")

STUB = """#!/bin/sh
# Stub pgmux: record the arguments, one per line.
for a in "$@"; do printf '%s\\n' "$a"; done > "$STUB_ARGS"
exit 0
"""


class Env:
    """A sandbox for one entrypoint run."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.bin = tmp / "bin"
        self.bin.mkdir()
        (self.bin / "pgmux").write_text(STUB)
        (self.bin / "pgmux").chmod(0o755)
        self.run_dir = tmp / "run"
        self.keys = tmp / "config-keys"
        self.keys.write_text(subprocess.check_output([LIST_KEYS, os.path.join(ROOT, "src", "config.c")], text=True))
        self.args_file = tmp / "args"

    def run(self, env=None, args=(), config=None):
        e = {
            "PATH": "%s:/usr/bin:/bin" % self.bin,
            "PGMUX_RUN_DIR": str(self.run_dir),
            "PGMUX_KEYS_FILE": str(self.keys),
            "PGMUX_CONFIG": str(config or self.tmp / "not-mounted.ini"),
            "STUB_ARGS": str(self.args_file),
        }
        e.update(env or {})
        if self.args_file.exists():
            self.args_file.unlink()
        p = subprocess.run(["bash", ENTRYPOINT, *args], env=e, capture_output=True, text=True, timeout=30)
        p.output = p.stdout + p.stderr
        p.exec_args = self.args_file.read_text().splitlines() if self.args_file.exists() else None
        return p

    @property
    def ini(self):
        return self.run_dir / "pgmux.ini"

    @property
    def authfile(self):
        return self.run_dir / "userlist.txt"


@pytest.fixture
def sandbox(tmp_path):
    return Env(tmp_path)


def parse_ini(path):
    """{section: [(key, value), ...]} for the generated file (no %include there)."""
    out, section = {}, None
    for line in path.read_text().splitlines():
        s = line.strip()
        if not s or s[0] in ";#":
            continue
        if s.startswith("["):
            section = s[1:s.index("]")]
            out.setdefault(section, [])
            continue
        key, _, value = s.partition("=")
        out[section].append((key.strip(), value.strip()))
    return out


def settings(path):
    return dict(parse_ini(path)["pgbouncer"])


def databases(path):
    return parse_ini(path)["databases"]


BASIC = {"DB_HOST": "db.example", "DB_USER": "app", "DB_PASSWORD": "s3cret-pw", "DB_NAME": "app"}


# ---------------------------------------------------------------------------------------------
# DB_* variables


def test_db_variables(sandbox):
    p = sandbox.run(BASIC)
    assert p.returncode == 0, p.output
    assert p.exec_args == [str(sandbox.ini)]
    assert databases(sandbox.ini) == [("app", "host='db.example' port=5432 dbname='app'")]
    s = settings(sandbox.ini)
    assert s["listen_addr"] == "0.0.0.0"
    assert s["listen_port"] == "6432"
    assert s["auth_type"] == "md5"
    assert s["auth_file"] == str(sandbox.authfile)
    assert s["unix_socket_dir"] == str(sandbox.run_dir)
    assert (s["stats_listen_addr"], s["stats_listen_port"]) == ("0.0.0.0", "9127")
    assert (s["health_listen_addr"], s["health_listen_port"]) == ("0.0.0.0", "8080")
    lines = [l for l in sandbox.authfile.read_text().splitlines() if not l.startswith(";")]
    assert lines == ['"app" "s3cret-pw"']


def test_secret_files_are_private(sandbox):
    p = sandbox.run(BASIC)
    assert p.returncode == 0, p.output
    assert stat.S_IMODE(sandbox.authfile.stat().st_mode) == 0o600
    assert stat.S_IMODE(sandbox.ini.stat().st_mode) == 0o600
    assert stat.S_IMODE(sandbox.run_dir.stat().st_mode) == 0o700


def test_password_never_printed_nor_in_ini(sandbox):
    pw = "Very$ecret'\"pw"
    url = "postgres://app:%s@h/db" % urllib.parse.quote(pw, safe="")
    for env in ({**BASIC, "DB_PASSWORD": pw}, {"DATABASE_URL": url}):
        p = sandbox.run(env)
        assert p.returncode == 0, p.output
        assert "password set" in p.output
        assert pw not in p.output and urllib.parse.quote(pw, safe="") not in p.output
        assert pw not in sandbox.ini.read_text()


def test_no_database_name_means_wildcard(sandbox):
    env = dict(BASIC)
    del env["DB_NAME"]
    p = sandbox.run(env)
    assert p.returncode == 0, p.output
    assert databases(sandbox.ini) == [("*", "host='db.example' port=5432")]


def test_db_port(sandbox):
    p = sandbox.run({**BASIC, "DB_PORT": "6543"})
    assert p.returncode == 0, p.output
    assert databases(sandbox.ini)[0][1] == "host='db.example' port=6543 dbname='app'"


@pytest.mark.parametrize("port", ["0", "65536", "54x", "-1"])
def test_bad_port(sandbox, port):
    p = sandbox.run({**BASIC, "DB_PORT": port})
    assert p.returncode == 1
    assert "port must be a number" in p.output
    assert not sandbox.ini.exists()


def test_quoting_of_awkward_values(sandbox):
    p = sandbox.run(
        {
            "DB_HOST": "o'host",
            "DB_USER": 'we"ird user',
            "DB_PASSWORD": 'p"w\'; x',
            "DB_NAME": 'my "db" 1',
        }
    )
    assert p.returncode == 0, p.output
    assert databases(sandbox.ini) == [('"my ""db"" 1"', "host='o''host' port=5432 dbname='my \"db\" 1'")]
    assert sandbox.authfile.read_text().splitlines()[-1] == '"we""ird user" "p""w\'; x"'


def test_user_without_password(sandbox):
    p = sandbox.run({"DB_HOST": "h", "DB_USER": "app"})
    assert p.returncode == 0, p.output
    assert "no password for user" in p.output
    assert [l for l in sandbox.authfile.read_text().splitlines() if not l.startswith(";")] == []


def test_trust_needs_no_password_notice(sandbox):
    p = sandbox.run({"DB_HOST": "h", "DB_USER": "app", "AUTH_TYPE": "trust"})
    assert p.returncode == 0, p.output
    assert "no password" not in p.output


# ---------------------------------------------------------------------------------------------
# DATABASE_URL


def test_database_url(sandbox):
    p = sandbox.run({"DATABASE_URL": "postgresql://app:pw@db:5433/appdb"})
    assert p.returncode == 0, p.output
    assert databases(sandbox.ini) == [("appdb", "host='db' port=5433 dbname='appdb'")]
    assert sandbox.authfile.read_text().splitlines()[-1] == '"app" "pw"'


def test_database_url_percent_decoding(sandbox):
    user, pw, db = "us@r:x", "p@ss/w:rd%?#&= \\n", "my db/é"
    url = "postgres://%s:%s@db.example/%s" % (
        urllib.parse.quote(user, safe=""),
        urllib.parse.quote(pw, safe=""),
        urllib.parse.quote(db, safe=""),
    )
    p = sandbox.run({"DATABASE_URL": url})
    assert p.returncode == 0, p.output
    assert databases(sandbox.ini) == [('"%s"' % db, "host='db.example' port=5432 dbname='%s'" % db)]
    assert sandbox.authfile.read_text().splitlines()[-1] == '"%s" "%s"' % (user, pw)


def test_database_url_unencoded_at_in_password(sandbox):
    # Not valid URL syntax, but common: the last @ ends the user info.
    p = sandbox.run({"DATABASE_URL": "postgres://app:p@ss@db/app"})
    assert p.returncode == 0, p.output
    assert sandbox.authfile.read_text().splitlines()[-1] == '"app" "p@ss"'
    assert databases(sandbox.ini)[0][1].startswith("host='db' ")


def test_database_url_ipv6_and_host_list(sandbox):
    p = sandbox.run({"DATABASE_URL": "postgres://u:p@[::1]:6000,[fd00::2]:6000/d"})
    assert p.returncode == 0, p.output
    assert databases(sandbox.ini) == [("d", "host='::1,fd00::2' port=6000 dbname='d'")]
    p = sandbox.run({"DATABASE_URL": "postgres://u:p@h1,h2:5555/d"})
    assert p.returncode == 0, p.output
    assert databases(sandbox.ini) == [("d", "host='h1,h2' port=5555 dbname='d'")]


def test_database_url_host_list_with_different_ports(sandbox):
    p = sandbox.run({"DATABASE_URL": "postgres://u:p@h1:1,h2:2/d"})
    assert p.returncode == 1
    assert "different ports" in p.output


def test_database_url_without_db_and_user(sandbox):
    p = sandbox.run({"DATABASE_URL": "postgres://db.example"})
    assert p.returncode == 0, p.output
    assert databases(sandbox.ini) == [("*", "host='db.example' port=5432")]
    assert "user (none)" in p.output


def test_database_url_sslmode_and_unknown_parameters(sandbox):
    p = sandbox.run({"DATABASE_URL": "postgres://u:p@h/d?sslmode=verify-full&connect_timeout=5"})
    assert p.returncode == 0, p.output
    assert settings(sandbox.ini)["server_tls_sslmode"] == "verify-full"
    assert 'parameter "connect_timeout" is not used' in p.output


@pytest.mark.parametrize(
    "url,msg",
    [
        ("mysql://u:p@h/d", "must start with postgres://"),
        ("postgres://u:p@/d", "no host"),
        ("postgres://u:p%zz@h/d", "bad percent-escape in the password"),
        ("postgres://u:p%4@h/d", "bad percent-escape in the password"),
        ("postgres://u:p%00x@h/d", "%00 is not allowed"),
        ("postgres://u:p%0Ax@h/d", "line break"),
        ("postgres://u:p@h/d\n[databases]", "DATABASE_URL contains a line break"),
    ],
)
def test_database_url_errors(sandbox, url, msg):
    p = sandbox.run({"DATABASE_URL": url})
    assert p.returncode == 1, p.output
    assert msg in p.output
    assert "p%" not in p.output  # the password part is not echoed
    assert not sandbox.ini.exists()


def test_db_variables_override_url_parts(sandbox):
    p = sandbox.run(
        {
            "DATABASE_URL": "postgres://urluser:urlpw@urlhost:1111/urldb",
            "DB_PASSWORD": "frompassword",
            "DB_HOST": "realhost",
        }
    )
    assert p.returncode == 0, p.output
    assert databases(sandbox.ini) == [("urldb", "host='realhost' port=1111 dbname='urldb'")]
    assert sandbox.authfile.read_text().splitlines()[-1] == '"urluser" "frompassword"'


# ---------------------------------------------------------------------------------------------
# Shorthands and PGMUX_<KEY>


def test_shorthands(sandbox):
    p = sandbox.run(
        {**BASIC, "POOL_MODE": "transaction", "DEFAULT_POOL_SIZE": "7", "MAX_CLIENT_CONN": "500", "AUTH_TYPE": "scram-sha-256"}
    )
    assert p.returncode == 0, p.output
    s = settings(sandbox.ini)
    assert (s["pool_mode"], s["default_pool_size"], s["max_client_conn"], s["auth_type"]) == (
        "transaction",
        "7",
        "500",
        "scram-sha-256",
    )


def test_pgmux_key_variables(sandbox):
    p = sandbox.run(
        {
            **BASIC,
            "PGMUX_SERVER_IDLE_TIMEOUT": "300",
            "PGMUX_IGNORE_STARTUP_PARAMETERS": "extra_float_digits,options",
            "PGMUX_LISTEN_PORT": "7432",
            "PGMUX_ADMIN_USERS": "app, admin",
        }
    )
    assert p.returncode == 0, p.output
    s = settings(sandbox.ini)
    assert s["server_idle_timeout"] == "300"
    assert s["ignore_startup_parameters"] == "extra_float_digits,options"
    assert s["listen_port"] == "7432"
    assert s["admin_users"] == "app, admin"
    # each key once
    keys = [k for k, _ in parse_ini(sandbox.ini)["pgbouncer"]]
    assert len(keys) == len(set(keys))


def test_pgmux_variable_wins_over_shorthand(sandbox):
    p = sandbox.run({**BASIC, "POOL_MODE": "session", "PGMUX_POOL_MODE": "transaction"})
    assert p.returncode == 0, p.output
    assert settings(sandbox.ini)["pool_mode"] == "transaction"
    assert "PGMUX_POOL_MODE overrides POOL_MODE" in p.output


def test_unknown_pgmux_variables_are_ignored(sandbox):
    p = sandbox.run({**BASIC, "PGMUX_NO_SUCH_KEY": "1", "PGMUX_LISTEN-PORT": "1"})
    assert p.returncode == 0, p.output
    assert 'PGMUX_NO_SUCH_KEY: "no_such_key" is not a [pgbouncer] key; ignored' in p.output
    assert "no_such_key" not in sandbox.ini.read_text()


def test_kubernetes_service_links_are_ignored(sandbox):
    links = {
        "PGMUX_PORT": "tcp://10.0.0.9:6432",
        "PGMUX_PORT_6432_TCP": "tcp://10.0.0.9:6432",
        "PGMUX_PORT_6432_TCP_ADDR": "10.0.0.9",
        "PGMUX_PORT_6432_TCP_PORT": "6432",
        "PGMUX_PORT_6432_TCP_PROTO": "tcp",
        "PGMUX_SERVICE_HOST": "10.0.0.9",
        "PGMUX_SERVICE_PORT": "6432",
        "PGMUX_SERVICE_PORT_POSTGRES": "6432",
    }
    p = sandbox.run({**BASIC, **links})
    assert p.returncode == 0, p.output
    assert "10.0.0.9" not in sandbox.ini.read_text()
    assert "not a [pgbouncer] key" not in p.output


def test_script_settings_are_not_keys(sandbox):
    p = sandbox.run(BASIC)
    assert p.returncode == 0, p.output
    text = sandbox.ini.read_text()
    for word in ("run_dir", "keys_file", "\nconfig ="):
        assert word not in text


def test_without_key_list_every_variable_passes(sandbox):
    p = sandbox.run({**BASIC, "PGMUX_KEYS_FILE": str(sandbox.tmp / "missing"), "PGMUX_SOMETHING_NEW": "x"})
    assert p.returncode == 0, p.output
    assert "no key list" in p.output
    assert settings(sandbox.ini)["something_new"] == "x"


def test_auth_file_elsewhere(sandbox):
    p = sandbox.run({**BASIC, "PGMUX_AUTH_FILE": "/etc/pgmux/secret/userlist.txt"})
    assert p.returncode == 0, p.output
    assert settings(sandbox.ini)["auth_file"] == "/etc/pgmux/secret/userlist.txt"
    assert not sandbox.authfile.exists()
    assert "password from the environment is not used" in p.output


@pytest.mark.parametrize("name", ["DB_HOST", "DB_PASSWORD", "PGMUX_ADMIN_USERS", "POOL_MODE"])
@pytest.mark.parametrize("brk", ["\n", "\r"])
def test_line_breaks_are_refused(sandbox, name, brk):
    p = sandbox.run({**BASIC, name: "x%s[databases]" % brk})
    assert p.returncode == 1
    assert "%s contains a line break" % name in p.output
    assert not sandbox.ini.exists()


# ---------------------------------------------------------------------------------------------
# Which config wins, and the command line


def test_mounted_config_wins(sandbox):
    mounted = sandbox.tmp / "mounted.ini"
    mounted.write_text("[databases]\n* = host=x\n[pgbouncer]\nlisten_port = 1\n")
    p = sandbox.run({**BASIC, "PGMUX_POOL_MODE": "transaction"}, config=mounted)
    assert p.returncode == 0, p.output
    assert p.exec_args == [str(mounted)]
    assert "using the mounted" in p.output and "are ignored" in p.output
    assert not sandbox.ini.exists() and not sandbox.authfile.exists()


def test_mounted_config_without_environment_is_quiet(sandbox):
    mounted = sandbox.tmp / "mounted.ini"
    mounted.write_text("[pgbouncer]\n")
    p = sandbox.run({}, config=mounted, args=["pgmux", "-v"])
    assert p.returncode == 0, p.output
    assert p.exec_args == ["-v", str(mounted)]
    assert p.output == ""


def test_config_on_command_line(sandbox):
    p = sandbox.run(BASIC, args=["pgmux", "-q", "-u", "nobody", "/conf/x.ini"])
    assert p.returncode == 0, p.output
    assert p.exec_args == ["-q", "-u", "nobody", "/conf/x.ini"]
    assert not sandbox.ini.exists()


def test_options_only_are_passed_before_the_generated_config(sandbox):
    p = sandbox.run(BASIC, args=["-v", "-v", "-u", "somebody"])
    assert p.returncode == 0, p.output
    assert p.exec_args == ["-v", "-v", "-u", "somebody", str(sandbox.ini)]


@pytest.mark.parametrize("flag", ["--version", "-V", "--help", "-h", "-qV"])
def test_version_and_help_need_no_config(sandbox, flag):
    p = sandbox.run({}, args=["pgmux", flag])
    assert p.returncode == 0, p.output
    assert p.exec_args == [flag]


def test_user_name_is_not_a_flag(sandbox):
    # "-uhank" is -u hank, not -h
    p = sandbox.run({}, args=["pgmux", "-uhank"])
    assert p.returncode == 1
    assert "no configuration" in p.output


def test_other_commands_are_run(sandbox):
    p = sandbox.run({}, args=["echo", "hello"])
    assert p.returncode == 0
    assert p.stdout == "hello\n"


def test_run_dir_not_writable(sandbox):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    sandbox.run_dir.mkdir(mode=0o500)
    p = sandbox.run(BASIC)
    assert p.returncode == 1
    assert "is not writable" in p.output


def test_run_dir_is_a_file(sandbox):
    sandbox.run_dir.write_text("")
    p = sandbox.run(BASIC)
    assert p.returncode == 1
    assert "is not writable" in p.output


def test_no_configuration_at_all(sandbox):
    p = sandbox.run({})
    assert p.returncode == 1
    assert "no configuration" in p.output and "DATABASE_URL" in p.output


# ---------------------------------------------------------------------------------------------
# The generated files through pgmux's own parsers

CHECKER = r"""
#include "authfile.h"
#include "config.h"
#include <stdio.h>

/* Load an ini (and its auth_file) with pgmux's code; print keys, databases, users. */
int main(int argc, char **argv)
{
    struct config_error err;
    char buf[2048];
    size_t n;
    struct config *cfg = config_load(argv[1], &err);
    if (!cfg) {
        config_error_format(&err, buf, sizeof(buf));
        printf("ERROR %s\n", buf);
        return 1;
    }
    const struct config_key *keys = config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        config_format(cfg, &keys[i], buf, sizeof(buf));
        printf("key %s=%s\n", keys[i].name, buf);
    }
    for (int i = 0; i < cfg->n_dbs; i++)
        printf("db %s|%s|%d|%s\n", cfg->dbs[i].name, cfg->dbs[i].host ? cfg->dbs[i].host : "",
               cfg->dbs[i].port, cfg->dbs[i].dbname ? cfg->dbs[i].dbname : "");
    if (cfg->auth_file[0]) {
        struct authfile *af = authfile_load(cfg->auth_file, buf, sizeof(buf));
        if (!af) {
            printf("ERROR %s\n", buf);
            return 1;
        }
        for (int i = 2; i < argc; i++) {
            const char *s = authfile_lookup(af, argv[i]);
            printf("user %s=%s\n", argv[i], s ? s : "(none)");
        }
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def checker(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler for the config checker")
    d = tmp_path_factory.mktemp("checker")
    (d / "check.c").write_text(CHECKER)
    srcs = [os.path.join(ROOT, "src", f) for f in ("config.c", "connstr.c", "authfile.c")]
    cmd = [cc, "-std=c11", "-D_GNU_SOURCE", "-I", os.path.join(ROOT, "include"), str(d / "check.c"), *srcs,
           "-o", str(d / "check"), "-linih", "-lcrypto", "-lm"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("cannot build the config checker from src/ (%s)" % p.stderr.strip()[-300:])
    return str(d / "check")


def load_with_pgmux(checker, ini, *users):
    p = subprocess.run([checker, str(ini), *users], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    keys, dbs, found = {}, [], {}
    for line in p.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "key":
            k, _, v = rest.partition("=")
            keys[k] = v
        elif kind == "db":
            dbs.append(tuple(rest.split("|")))
        elif kind == "user":
            u, _, s = rest.partition("=")
            found[u] = s
    return keys, dbs, found


def test_pgmux_parses_generated_config(sandbox, checker):
    p = sandbox.run(
        {
            **BASIC,
            "POOL_MODE": "transaction",
            "DEFAULT_POOL_SIZE": "9",
            "AUTH_TYPE": "scram-sha-256",
            "PGMUX_SERVER_LIFETIME": "1800",
            "PGMUX_IGNORE_STARTUP_PARAMETERS": "extra_float_digits",
        }
    )
    assert p.returncode == 0, p.output
    keys, dbs, users = load_with_pgmux(checker, sandbox.ini, "app")
    assert keys["pool_mode"] == "transaction"
    assert keys["default_pool_size"] == "9"
    assert keys["auth_type"] == "scram-sha-256"
    assert keys["server_lifetime"] == "1800"
    assert keys["listen_addr"] == "0.0.0.0"
    assert keys["health_listen_port"] == "8080"
    assert keys["stats_listen_port"] == "9127"
    assert dbs == [("app", "db.example", "5432", "app")]
    assert users == {"app": "s3cret-pw"}


def test_pgmux_parses_awkward_names(sandbox, checker):
    user, pw, db, host = 'we"ird \'user', "p\"w'd; #x =y", 'my "db"=1; x', "db-1.example"
    url = "postgres://%s:%s@%s:6000/%s?sslmode=require" % tuple(
        urllib.parse.quote(x, safe="") for x in (user, pw, host, db)
    )
    p = sandbox.run({"DATABASE_URL": url})
    assert p.returncode == 0, p.output
    keys, dbs, users = load_with_pgmux(checker, sandbox.ini, user)
    assert dbs == [(db, host, "6000", db)]
    assert users == {user: pw}
    assert keys["server_tls_sslmode"] == "require"


def test_pgmux_parses_wildcard_database(sandbox, checker):
    p = sandbox.run({"DB_HOST": "10.1.2.3", "DB_PORT": "5433"})
    assert p.returncode == 0, p.output
    keys, dbs, _ = load_with_pgmux(checker, sandbox.ini)
    assert dbs == [("*", "10.1.2.3", "5433", "")]


def test_shellcheck_clean():
    sc = shutil.which("shellcheck")
    if not sc:
        pytest.skip("shellcheck not installed")
    scripts = [
        os.path.join(ROOT, "contrib", "docker", f)
        for f in ("entrypoint.sh", "healthcheck.sh", "list-config-keys.sh", "test.sh")
    ]
    p = subprocess.run([sc, *scripts], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout


HEALTH_INI = textwrap.dedent(
    """
    [databases]
    * = host=x
    [pgbouncer]
    listen_addr = 127.0.0.1
    listen_port = {lport}
    ; health_listen_port = 1
    health_listen_addr = 127.0.0.1
    health_listen_port = {hport}
    """
)


def _serve_once(status):
    """A one-shot HTTP server on a free loopback port; returns (port, thread)."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def run():
        c, _ = srv.accept()
        req = b""
        while b"\r\n\r\n" not in req:
            chunk = c.recv(1024)
            if not chunk:
                break
            req += chunk
        body = b"not ready: paused\n" if status != 200 else b"ready\n"
        c.sendall(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (status, len(body), body))
        c.close()
        srv.close()
        run.request = req

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return srv.getsockname()[1], t, run


@pytest.mark.parametrize("status,rc", [(200, 0), (503, 1)])
def test_healthcheck_http(tmp_path, status, rc):
    port, t, handler = _serve_once(status)
    (tmp_path / "active.ini").write_text(HEALTH_INI.format(lport=1, hport=port))
    p = subprocess.run(
        ["bash", os.path.join(ROOT, "contrib", "docker", "healthcheck.sh")],
        env={"PATH": "/usr/bin:/bin", "PGMUX_RUN_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=20,
    )
    t.join(5)
    assert p.returncode == rc, p.stdout + p.stderr
    assert handler.request.startswith(b"GET /health/ready HTTP/1.0\r\n")
    if rc:
        assert "503" in p.stdout and "not ready: paused" in p.stdout
    else:
        assert p.stdout.startswith("healthy: HTTP/1.1 200")


def test_healthcheck_falls_back_to_the_pooler_port(tmp_path):
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    (tmp_path / "active.ini").write_text(HEALTH_INI.format(lport=srv.getsockname()[1], hport=0))
    hc = os.path.join(ROOT, "contrib", "docker", "healthcheck.sh")
    env = {"PATH": "/usr/bin:/bin", "PGMUX_RUN_DIR": str(tmp_path)}
    p = subprocess.run(["bash", hc], env=env, capture_output=True, text=True, timeout=20)
    assert p.returncode == 0 and "pooler port" in p.stdout, p.stdout + p.stderr
    srv.close()
    p = subprocess.run(["bash", hc], env=env, capture_output=True, text=True, timeout=20)
    assert p.returncode == 1 and "cannot connect to the pooler port" in p.stdout
