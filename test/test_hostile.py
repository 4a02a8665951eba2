"""Hostile and malformed input on raw sockets. For each case the bad client gets an error or a
close, and pgmux survives: its process is alive and another client can still query."""

import base64
import os
import socket
import struct
import time

import pytest

from pgmux_helpers import DBNAME, SANITIZE, PgError, RawClient, pid_alive, wait_until

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
GSSENC_REQUEST = struct.pack("!ii", 8, 80877104)


def _sock(m):
    s = socket.create_connection(("127.0.0.1", m.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _drain(s, timeout=5.0):
    """Read until EOF/reset; return the bytes. Fails the test if still open after timeout."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("pgmux kept the bad connection open for %.1fs (got %r)"
                                 % (timeout, data[:200]))
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return data
        except socket.timeout:
            continue
        if not chunk:
            return data
        data += chunk


def _errors(data):
    """ErrorResponse messages in a byte stream (parsed loosely)."""
    out = []
    while len(data) >= 5:
        t = data[:1]
        (ln,) = struct.unpack("!i", data[1:5])
        if ln < 4:
            break
        body = data[5:1 + ln]
        if t == b"E":
            out.append(body)
        data = data[1 + ln:]
    return out


def _assert_error_or_close(s, timeout=5.0):
    data = _drain(s, timeout)
    if data[:2] == b"NE":
        data = data[1:]  # an SSL/GSSENC request answered 'N', then the error
    # either nothing (plain close) or a well-formed ErrorResponse
    if data:
        errs = _errors(data)
        assert errs, "expected an ErrorResponse or a close, got %r" % data[:200]
        return errs
    return []


def _assert_survives(m):
    assert m.alive() and pid_alive(m.pid), "pgmux died"
    c = m.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT 'survived'")
    assert cur.fetchone() == ("survived",)
    c.close()


def _startup_body(params, proto=196608):
    body = struct.pack("!i", proto)
    for k, v in params:
        body += k + b"\0" + v + b"\0"
    return body + b"\0"


CASES = {
    # name: bytes sent right after connect
    "len_below_8": struct.pack("!i", 4) + struct.pack("!i", 196608),
    "len_zero": struct.pack("!i", 0) + b"\0" * 8,
    "len_negative": struct.pack("!i", -1) + struct.pack("!i", 196608) + b"user\0x\0\0",
    "len_min_int": struct.pack("!i", -2 ** 31) + b"\0" * 8,
    "len_huge": struct.pack("!i", 100000) + struct.pack("!i", 196608) + b"user\0testuser\0",
    "len_max_int": struct.pack("!i", 2 ** 31 - 1) + struct.pack("!i", 196608),
    "missing_nul": (lambda b: struct.pack("!i", len(b) + 4) + b)(
        struct.pack("!i", 196608) + b"user\0testuser\0database\0p0"),
    "missing_final_nul": (lambda b: struct.pack("!i", len(b) + 4) + b)(
        struct.pack("!i", 196608) + b"user\0testuser\0database\0p0\0"),
    "key_without_value": (lambda b: struct.pack("!i", len(b) + 4) + b)(
        struct.pack("!i", 196608) + b"user\0testuser\0database\0\0"),
    "no_user": (lambda b: struct.pack("!i", len(b) + 4) + b)(
        _startup_body([(b"database", b"p0")])),
    "empty_user": (lambda b: struct.pack("!i", len(b) + 4) + b)(
        _startup_body([(b"user", b""), (b"database", b"p0")])),
    "garbage_http": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "garbage_random": bytes(range(256)) * 4,
    "unknown_proto_code": struct.pack("!ii", 8, 12345678),
    "protocol_4": (lambda b: struct.pack("!i", len(b) + 4) + b)(
        _startup_body([(b"user", b"testuser")], proto=4 << 16)),
    "cancel_short": struct.pack("!ii", 12, 80877102) + b"\0\0\0\0",
    "cancel_long": struct.pack("!ii", 24, 80877102) + b"\0" * 16,
    "ssl_request_long": struct.pack("!ii", 12, 80877103) + b"\0\0\0\0",
    "long_param_name": (lambda b: struct.pack("!i", len(b) + 4) + b)(
        _startup_body([(b"user", b"testuser"), (b"x" * 9000, b"y")])),
    "many_params": (lambda b: struct.pack("!i", len(b) + 4) + b)(
        _startup_body([(b"user", b"testuser")] + [(b"p%d" % i, b"v") for i in range(900)])),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_startup(pgmux_factory, case):
    m = pgmux_factory(settings={"client_login_timeout": 3})
    s = _sock(m)
    try:
        s.sendall(CASES[case])
    except (ConnectionResetError, BrokenPipeError):
        pass
    _assert_error_or_close(s, timeout=6)
    s.close()
    _assert_survives(m)


def test_protocol_2_rejected(pgmux):
    """A protocol 2.0 startup (length 296) gets an ErrorResponse that mentions the protocol."""
    body = struct.pack("!i", 2 << 16) + b"p0".ljust(64, b"\0") + b"testuser".ljust(32, b"\0") \
        + b"\0" * 64 + b"\0" * 64 + b"\0" * 64
    assert len(body) + 4 == 296
    s = _sock(pgmux)
    s.sendall(struct.pack("!i", 296) + body)
    data = _drain(s, 5)
    s.close()
    assert data, "expected an error, got a silent close"
    # the error may be a v3 ErrorResponse, or a v2 one ('E' + text + NUL)
    assert data[:1] == b"E"
    assert b"protocol" in data.lower(), data
    _assert_survives(pgmux)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_truncated_header_then_close(pgmux, n):
    startup = RawClient.startup_packet({"user": "testuser", "database": DBNAME})
    s = _sock(pgmux)
    s.sendall(startup[:n])
    time.sleep(0.1)
    s.close()
    _assert_survives(pgmux)


def test_truncated_body_then_close(pgmux):
    startup = RawClient.startup_packet({"user": "testuser", "database": DBNAME})
    s = _sock(pgmux)
    s.sendall(startup[:-5])
    time.sleep(0.1)
    s.close()
    _assert_survives(pgmux)


def test_ssl_request_then_plain_startup(pgmux):
    r = pgmux.raw()
    r.send(SSL_REQUEST)
    assert r.read_byte() == b"N"
    r.login()
    assert r.query("SELECT 'after N'") == [("after N",)]
    r.close()


def test_gssenc_request_then_plain_startup(pgmux):
    r = pgmux.raw()
    r.send(GSSENC_REQUEST)
    assert r.read_byte() == b"N"
    r.login()
    assert r.query("SELECT 'after gss N'") == [("after gss N",)]
    r.close()


def test_gssenc_then_ssl_then_startup(pgmux):
    """libpq's order with gssencmode=prefer and sslmode=prefer."""
    r = pgmux.raw()
    r.send(GSSENC_REQUEST)
    assert r.read_byte() == b"N"
    r.send(SSL_REQUEST)
    assert r.read_byte() == b"N"
    r.login()
    assert r.query("SELECT 1") == [("1",)]
    r.close()


def test_ssl_request_twice_after_startup_rejected(pgmux):
    """An SSLRequest after login is not a valid message: error or close, pgmux survives."""
    r = pgmux.raw()
    r.login()
    r.send(SSL_REQUEST)
    _assert_error_or_close(r.sock, 5)
    r.close()
    _assert_survives(pgmux)


def test_silent_client_does_not_block_others(pgmux):
    silent = [_sock(pgmux) for _ in range(20)]
    partial = []
    for _ in range(20):
        s = _sock(pgmux)
        s.sendall(RawClient.startup_packet({"user": "testuser"})[:6])
        partial.append(s)
    for i in range(5):
        c = pgmux.connect(autocommit=True)
        cur = c.cursor()
        cur.execute("SELECT %s::int", (i,))
        assert cur.fetchone() == (i,)
        c.close()
    for s in silent + partial:
        s.close()
    _assert_survives(pgmux)


AFTER_LOGIN = {
    "len_zero": b"Q" + struct.pack("!i", 0),
    "len_3": b"Q" + struct.pack("!i", 3),
    "len_negative": b"Q" + struct.pack("!i", -5) + b"SELECT 1\0",
    "len_huge": b"Q" + struct.pack("!i", 0x7FFFFFF0) + b"SELECT 1",
    "unknown_type_Y": b"Y" + struct.pack("!i", 4),
    "unknown_type_nul": b"\0" + struct.pack("!i", 8) + b"abcd",
    "startup_again": RawClient.startup_packet({"user": "testuser"}),
    "parse_truncated": b"P" + struct.pack("!i", 8) + b"ab",
}


@pytest.mark.parametrize("case", sorted(AFTER_LOGIN))
def test_bad_message_after_login(pgmux_factory, case):
    m = pgmux_factory(settings={"default_pool_size": 2})
    r = m.raw()
    r.login()
    assert r.query("SELECT 1") == [("1",)]
    try:
        r.send(AFTER_LOGIN[case])
        if case == "parse_truncated":
            r.sock.shutdown(socket.SHUT_WR)
    except (ConnectionResetError, BrokenPipeError):
        pass
    _assert_error_or_close(r.sock, 6)
    r.close()
    _assert_survives(m)
    # and the pool is still healthy: two queries in parallel through both servers
    c1 = m.connect(autocommit=True)
    c2 = m.connect(autocommit=True)
    for c in (c1, c2):
        cur = c.cursor()
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
    c1.close()
    c2.close()


def test_query_without_nul(pgmux):
    """A Query body that is not NUL-terminated: error (from pgmux or PostgreSQL) or close."""
    r = pgmux.raw()
    r.login()
    r.send(b"Q" + struct.pack("!i", 4 + 8) + b"SELECT 1")
    msgs, how = r.collect(5)
    if how == "stop":
        assert any(t == b"E" for t, _ in msgs), msgs
        assert r.query("SELECT 3") == [("3",)]
    else:
        assert how == "closed", (msgs, how)
    r.close()
    _assert_survives(pgmux)


# --- SASL (SCRAM) exchanges with malformed content


def _sasl_start(m):
    r = m.raw()
    r.startup("testuser", DBNAME)
    t, body = r.read_msg()
    assert t == b"R" and struct.unpack("!i", body[:4])[0] == 10, (t, body)
    return r


def _sasl_initial(mech, data, inner_len=None):
    if inner_len is None:
        inner_len = len(data)
    return RawClient.msg(b"p", mech + b"\0" + struct.pack("!i", inner_len) + data)


SASL_CASES = {
    "inner_len_too_big": _sasl_initial(b"SCRAM-SHA-256", b"n,,n=,r=abcdef", 1000),
    "inner_len_negative_not_minus1": _sasl_initial(b"SCRAM-SHA-256", b"n,,n=,r=abcdef", -7),
    "inner_len_minus1": _sasl_initial(b"SCRAM-SHA-256", b"", -1),
    "no_mech_nul": RawClient.msg(b"p", b"SCRAM-SHA-256"),
    "unknown_mech": _sasl_initial(b"SCRAM-SHA-1", b"n,,n=,r=abcdef"),
    "plus_mech_not_offered": _sasl_initial(b"SCRAM-SHA-256-PLUS",
                                           b"p=tls-server-end-point,,n=,r=abcdef"),
    "empty_nonce": _sasl_initial(b"SCRAM-SHA-256", b"n,,n=,r="),
    "no_nonce": _sasl_initial(b"SCRAM-SHA-256", b"n,,n="),
    "channel_binding_required": _sasl_initial(b"SCRAM-SHA-256",
                                              b"p=tls-server-end-point,,n=,r=abcdef"),
    "bad_gs2_flag": _sasl_initial(b"SCRAM-SHA-256", b"x,,n=,r=abcdef"),
    "empty_message": _sasl_initial(b"SCRAM-SHA-256", b""),
    "garbage": _sasl_initial(b"SCRAM-SHA-256", os.urandom(64)),
    "nul_in_message": _sasl_initial(b"SCRAM-SHA-256", b"n,,n=,r=ab\0cd"),
    "authzid": _sasl_initial(b"SCRAM-SHA-256", b"n,a=someone,n=,r=abcdef"),
    "not_a_password_msg": RawClient.msg(b"Q", b"SELECT 1\0"),
}


@pytest.mark.parametrize("case", sorted(SASL_CASES))
def test_bad_sasl_initial(pgmux_factory, case):
    m = pgmux_factory(settings={"auth_type": "scram-sha-256"})
    r = _sasl_start(m)
    try:
        r.send(SASL_CASES[case])
    except (ConnectionResetError, BrokenPipeError):
        pass
    errs = _assert_error_or_close(r.sock, 6)
    for e in errs:
        # never a success, and auth failures look like PostgreSQL's
        assert b"C" in e
    r.close()
    _assert_survives(m)


FINAL_CASES = {
    "wrong_nonce": lambda srv_first: b"c=biws,r=" + b"x" * 40 + b",p=" + base64.b64encode(
        b"\0" * 32),
    "empty_proof": lambda srv_first: b"c=biws,r=" + _nonce(srv_first) + b",p=",
    "short_proof": lambda srv_first: b"c=biws,r=" + _nonce(srv_first) + b",p=" + base64.b64encode(
        b"\1" * 5),
    "bad_base64_proof": lambda srv_first: b"c=biws,r=" + _nonce(srv_first) + b",p=!!!!",
    "bad_channel_binding": lambda srv_first: b"c=eSws,r=" + _nonce(srv_first) + b",p="
    + base64.b64encode(b"\0" * 32),
    "no_proof": lambda srv_first: b"c=biws,r=" + _nonce(srv_first),
    "empty": lambda srv_first: b"",
    "garbage": lambda srv_first: os.urandom(100),
    "proof_all_zero": lambda srv_first: b"c=biws,r=" + _nonce(srv_first) + b",p="
    + base64.b64encode(b"\0" * 32),
}


def _nonce(server_first):
    for part in server_first.split(b","):
        if part.startswith(b"r="):
            return part[2:]
    return b""


@pytest.mark.parametrize("case", sorted(FINAL_CASES))
def test_bad_sasl_final(pgmux_factory, case):
    m = pgmux_factory(settings={"auth_type": "scram-sha-256"})
    r = _sasl_start(m)
    r.send(_sasl_initial(b"SCRAM-SHA-256", b"n,,n=,r=clientnonce0123456789"))
    t, body = r.read_msg()
    assert t == b"R" and struct.unpack("!i", body[:4])[0] == 11, (t, body)
    server_first = body[4:]
    assert server_first.startswith(b"r=clientnonce0123456789")
    r.send(RawClient.msg(b"p", FINAL_CASES[case](server_first)))
    data = _drain(r.sock, 6)
    r.close()
    # must not be let in: no AuthenticationOk / ReadyForQuery
    assert b"Z\0\0\0\x05" not in data
    errs = _errors(data)
    if errs:
        assert any(b"28P01" in e or b"08P01" in e or b"28000" in e for e in errs), errs
    _assert_survives(m)


def test_many_bad_clients_in_a_row(pgmux):
    """A burst of assorted bad clients, then good clients: nothing leaks or breaks."""
    rss0 = pgmux.rss_kb()
    for _ in range(10):
        for payload in CASES.values():
            s = _sock(pgmux)
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            s.close()
    _assert_survives(pgmux)
    wait_until(lambda: pgmux.connect(autocommit=True).close() is None, 5)
    if not SANITIZE:  # ASan's quarantine keeps freed memory resident
        assert pgmux.rss_kb() - rss0 < 20 * 1024


def test_error_fields_well_formed(pgmux):
    """Errors from pgmux itself carry severity, SQLSTATE and message, like PostgreSQL's."""
    r = pgmux.raw()
    with pytest.raises(PgError) as ei:
        r.login(database="no_such_database_here")
    f = ei.value.fields
    assert f.get("S") in ("FATAL", "ERROR")
    assert f.get("C") and len(f["C"]) == 5
    assert "no_such_database_here" in f.get("M", "")
    r.close()
