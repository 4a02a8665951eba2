"""Failed-login throttling and max_client_conn_per_addr (issue 4, Throttling), and the warning
for cert authentication that cannot work. pgmux extensions: skipped against PgBouncer.

Client addresses: pgmux listens on 127.0.0.1; RawFrom binds its socket to 127.0.0.2 (or any
127/8 address) before connecting, so pgmux sees another client address; the Unix socket is a
third way in, which is never throttled. Timings: a "delayed" login must take at least the
delay; an "instant" one must take less than half of it (the machine may be loaded)."""

import os
import re
import socket
import threading
import time

import psycopg2
import pytest

from pgmux_helpers import DBNAME, USERS, PgError, RawClient, wait_until
from test_metrics import http_get, obs_pgmux
from tls_helpers import client_tls_settings, standard_certs

pytestmark = pytest.mark.usefixtures("not_pgbouncer")

DELAY = 3.0


@pytest.fixture
def not_pgbouncer(is_pgbouncer):
    if is_pgbouncer:
        pytest.skip("pgmux extension: PgBouncer has no login throttling")


class RawFrom(RawClient):
    """RawClient whose connection comes from the given local address."""

    def __init__(self, port, source="127.0.0.2", timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.params = {}
        self.backend_key = None
        self.timeout = timeout


def throttled_pgmux(factory, **settings):
    s = {"auth_failure_limit": 3, "auth_failure_window": 30, "auth_failure_delay": DELAY}
    s.update(settings)
    return factory(settings=s)


def fail_login(m, source="127.0.0.1", user="testuser"):
    """One login with a wrong password from source; it must fail as PostgreSQL would."""
    c = RawFrom(m.port, source)
    try:
        with pytest.raises(PgError) as e:
            c.login(user=user, password="wrong-password")
        assert e.value.sqlstate == "28P01", e.value.fields
    finally:
        c.close()


def timed_login(m, source="127.0.0.1", user="testuser"):
    """Seconds a good login from source takes, up to ReadyForQuery; the session works."""
    t0 = time.monotonic()
    c = RawFrom(m.port, source, timeout=30)
    try:
        c.login(user=user)
        elapsed = time.monotonic() - t0
        assert c.query("SELECT 1") == [("1",)]
    finally:
        c.close()
    return elapsed


def timed_unix_login(m):
    t0 = time.monotonic()
    conn = psycopg2.connect(host=m.sockdir, port=m.port, dbname=DBNAME, user="testuser",
                            password=USERS["testuser"], connect_timeout=30)
    elapsed = time.monotonic() - t0
    conn.close()
    return elapsed


def in_thread(fn, *args):
    """Run fn(*args) in a thread; returns (thread, result dict with 'value' or 'error')."""
    out = {}

    def run():
        try:
            out["value"] = fn(*args)
        except BaseException as e:  # noqa: B902 - reported by the caller
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def result(t, out, timeout=30):
    t.join(timeout)
    assert not t.is_alive(), "still running after %ss" % timeout
    if "error" in out:
        raise out["error"]
    return out["value"]


# ---------------------------------------------------------------------------------------------


def test_failed_logins_delay_that_address_only(pgmux_factory):
    m = throttled_pgmux(pgmux_factory)
    # A client logged in before the attack, running queries throughout.
    busy = m.connect(autocommit=True)
    cur = busy.cursor()

    assert timed_login(m) < DELAY / 2, "logins are instant before any failure"
    m.mark_log()
    for _ in range(3):
        fail_login(m)
    m.wait_log(r"login throttling for 127\.0\.0\.1: 3 failed logins within 30 s")

    # The right password from the throttled address: held for the delay, then logged in.
    t, out = in_thread(timed_login, m)
    time.sleep(0.3)  # the held login is waiting in pgmux now
    # Meanwhile another address and the Unix socket log in at once...
    assert timed_login(m, source="127.0.0.2") < DELAY / 2
    assert timed_unix_login(m) < DELAY / 2
    # ...and the running client's queries are not slowed: the loop is not blocked.
    worst, n = 0.0, 0
    while t.is_alive() and n < 10000:
        q0 = time.monotonic()
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
        worst = max(worst, time.monotonic() - q0)
        n += 1
    assert n >= 10 and worst < DELAY / 4, (n, worst)
    elapsed = result(t, out)
    assert elapsed >= DELAY - 0.05, "throttled login answered after %.2fs" % elapsed
    busy.close()
    # A wrong password while throttled is delayed too, and answered with the usual error.
    t0 = time.monotonic()
    fail_login(m)
    assert time.monotonic() - t0 >= DELAY - 0.05


def test_window_expiry_and_successful_logins(pgmux_factory):
    """A successful login does not clear the failures; a window without failures does."""
    window = 2 * DELAY + 1.5
    m = throttled_pgmux(pgmux_factory, auth_failure_limit=2, auth_failure_window=window)
    fail_login(m)
    assert timed_login(m) < DELAY / 2, "one failure is below the limit"
    fail_login(m)
    last_failure = time.monotonic()
    assert timed_login(m) >= DELAY - 0.05
    assert timed_login(m) >= DELAY - 0.05, "a successful login must not reset the throttle"
    left = last_failure + window + 0.3 - time.monotonic()
    assert left > 0, "the machine is too slow for this test's timings"
    time.sleep(left)
    assert timed_login(m) < DELAY / 2, "the window passed without failures: instant again"


def test_unknown_users_count_as_failures(pgmux_factory):
    m = throttled_pgmux(pgmux_factory)
    for _ in range(3):
        fail_login(m, user="no_such_user")
    assert timed_login(m) >= DELAY - 0.05
    assert timed_login(m, source="127.0.0.3") < DELAY / 2


def test_max_client_conn_per_addr(pgmux_factory):
    m = pgmux_factory(settings={"max_client_conn_per_addr": 2, "admin_users": "testuser"})
    a, b = m.connect(), m.connect()
    with pytest.raises(psycopg2.OperationalError) as e:
        m.connect()
    assert "client connections exceeded for address 127.0.0.1 (max_client_conn_per_addr)" \
        in str(e.value)
    raw = RawFrom(m.port, "127.0.0.1")
    with pytest.raises(PgError) as pe:
        raw.login()
    assert pe.value.sqlstate == "53300"
    raw.close()
    # Other addresses and the Unix socket are not affected.
    other = RawFrom(m.port, "127.0.0.2")
    other.login()
    assert timed_unix_login(m) < 5
    # Naming the console database does not get past the limit over TCP (anyone can name it
    # before giving a password); the Unix socket stays the way in.
    with pytest.raises(psycopg2.OperationalError) as e:
        psycopg2.connect(host="127.0.0.1", port=m.port, dbname="pgbouncer", user="testuser",
                         password=USERS["testuser"])
    assert "max_client_conn_per_addr" in str(e.value)
    admin = psycopg2.connect(host=m.sockdir, port=m.port, dbname="pgbouncer", user="testuser",
                             password=USERS["testuser"])
    admin.close()
    # A closed connection frees its place.
    a.close()
    wait_until(lambda: _can_connect(m), 10, msg="a place freed")
    b.close()
    other.close()
    # Refusals are not failed logins: throttling stays off for the address.
    assert "login throttling" not in m.log()


def _can_connect(m):
    try:
        m.connect().close()
        return True
    except psycopg2.OperationalError:
        return False


def test_reload_picks_up_changes(pgmux_factory):
    m = pgmux_factory()
    for _ in range(3):
        fail_login(m)
    assert timed_login(m) < DELAY / 2, "throttling is off by default"

    m.settings.update(auth_failure_limit="2", auth_failure_delay=str(DELAY),
                      max_client_conn_per_addr="1")
    keep = m.connect()  # open before the reload: counted once the limit exists
    m.mark_log()
    m.write_config()
    m.reload()
    m.wait_log("configuration reloaded")
    with pytest.raises(psycopg2.OperationalError) as e:
        m.connect()
    assert "max_client_conn_per_addr" in str(e.value)
    keep.close()
    wait_until(lambda: _can_connect(m), 10, msg="limit of 1 with the old connection gone")
    fail_login(m)
    fail_login(m)
    assert timed_login(m) >= DELAY - 0.05

    m.settings.update(auth_failure_limit="0", max_client_conn_per_addr="0")
    m.mark_log()
    m.write_config()
    m.reload()
    m.wait_log("configuration reloaded")
    assert timed_login(m) < DELAY / 2, "limit 0 after reload: throttling off"


def test_metrics(pgmux_factory):
    m = obs_pgmux(pgmux_factory, settings={"auth_failure_limit": 2, "auth_failure_delay": 1})

    def metric(name):
        body = http_get(m.stats_port, "/metrics")[2]
        for line in body.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError("%s not in /metrics" % name)

    assert metric("pgmux_throttled_addresses") == 0
    fail_login(m)
    fail_login(m)
    assert metric("pgmux_throttled_addresses") == 1
    assert metric("pgmux_login_delays_total") == 0
    t, out = in_thread(timed_login, m)
    wait_until(lambda: metric("pgmux_delayed_logins") == 1, 5, msg="one login held")
    assert result(t, out) >= 0.95
    assert metric("pgmux_delayed_logins") == 0
    assert metric("pgmux_login_delays_total") == 1
    assert metric("pgmux_client_addresses") == 1  # remembered for its failures


def _ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_address(pgmux_factory):
    m = throttled_pgmux(pgmux_factory, listen_addr="127.0.0.1,::1")

    def login6(password=None):
        c = RawClient(m.port, host="::1", timeout=30)
        try:
            t0 = time.monotonic()
            c.login(password=password)
            return time.monotonic() - t0
        finally:
            c.close()

    for _ in range(3):
        with pytest.raises(PgError):
            login6(password="wrong-password")
    m.wait_log(r"login throttling for ::1: 3 failed logins", since_mark=False)
    assert login6() >= DELAY - 0.05
    assert timed_login(m) < DELAY / 2, "IPv4 127.0.0.1 is another address"


# ---------------------------------------------------------------------------------------------
# cert without client TLS


CERT_WARNING = r"cert.*: client TLS is off .*no client can log in with a certificate"


@pytest.fixture(scope="module")
def certs():
    c = standard_certs()
    yield c
    c.cleanup()


def test_cert_without_client_tls_warns(pgmux_factory):
    m = pgmux_factory(settings={"auth_type": "cert"})
    m.wait_log("auth_type = cert: client TLS is off", since_mark=False)

    # An hba file with a cert line: the warning names the line.
    m2 = pgmux_factory(start=False, settings={"auth_type": "hba"})
    hba = os.path.join(m2.dir, "hba.conf")
    m2.write_file(hba, "local all all scram-sha-256\n"
                       "host all all 127.0.0.1/32 scram-sha-256\n"
                       "hostssl all all 0.0.0.0/0 cert\n")
    m2.settings["auth_hba_file"] = hba
    m2.write_config()
    m2.start()
    m2.wait_log(r"auth_hba_file line 3 \(cert\): client TLS is off", since_mark=False)


def test_cert_warning_on_reload_only_when_it_applies(pgmux_factory, certs):
    m = pgmux_factory()
    m.connect().close()
    assert not re.search(CERT_WARNING, m.log()), "no warning for scram"
    m.settings["auth_type"] = "cert"
    m.mark_log()
    m.write_config()
    m.reload()
    m.wait_log(CERT_WARNING)

    # With client TLS and a CA, cert can work: no warning.
    tls = pgmux_factory(settings=dict(client_tls_settings(certs, "prefer"), auth_type="cert"))
    tls.wait_log("listening on port", since_mark=False)  # logged after the startup checks
    assert "auth_type = cert:" not in tls.log(), tls.log()
    # With client TLS but no CA, no certificate is ever asked for.
    noca = pgmux_factory(settings=dict(client_tls_settings(certs, "prefer", ca=False),
                                       auth_type="cert"))
    noca.wait_log("auth_type = cert: client_tls_ca_file is not set", since_mark=False)


def test_delay_not_below_login_timeout_warns(pgmux_factory):
    m = pgmux_factory(settings={"auth_failure_limit": 3, "auth_failure_delay": 10,
                                "client_login_timeout": 5})
    m.wait_log(r"auth_failure_delay \(10 s\) is not below client_login_timeout \(5 s\)",
               since_mark=False)
