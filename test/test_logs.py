"""Logs (issue 6): log_format = json gives one JSON object per line (ts, level, event, client
id, db, user, addr, msg), on stderr and in the logfile, whatever bytes clients send; the
periodic stats line comes in both formats; the logfile is reopened on SIGHUP."""

import json
import os
import re
import socket
import struct
import time

import psycopg2
import pytest

from pgmux_helpers import DBNAME, wait_until

pytestmark = pytest.mark.usefixtures("not_pgbouncer")


@pytest.fixture
def not_pgbouncer(is_pgbouncer):
    if is_pgbouncer:
        pytest.skip("pgmux extension: log_format")


def json_lines(text):
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise AssertionError("log line is not JSON: %r (%s)" % (line, e))
        assert isinstance(obj, dict), line
        for key in ("ts", "level", "pid", "event", "msg"):
            assert key in obj, "%s missing in %r" % (key, line)
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", obj["ts"]), obj["ts"]
        out.append(obj)
    return out


def startup_raw(port, params):
    """A StartupMessage with raw byte values (invalid UTF-8 allowed); returns the reply."""
    body = struct.pack("!i", 196608)
    for k, v in params.items():
        body += k + b"\0" + v + b"\0"
    body += b"\0"
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(struct.pack("!i", len(body) + 4) + body)
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    return data


def test_json_log_lines(pgmux_factory):
    m = pgmux_factory(settings={"log_format": "json", "stats_period": "1"}, start=False)
    logfile = os.path.join(m.dir, "file.log")
    m.settings["logfile"] = logfile
    m.write_config()
    m.start()
    assert m.psql("SELECT 1") == "1"
    with pytest.raises(psycopg2.OperationalError):
        m.connect(password="wrong")
    # names with quotes, backslashes, control characters and invalid UTF-8 reach the log
    startup_raw(m.port, {b"user": b"testuser", b"database": b'db"\\\x01\xff\xfe\xc3('})
    wait_until(lambda: any(o["event"] == "stats" for o in json_lines(m.log())), 10,
               msg="a stats event")

    for text in (m.log(), open(logfile, encoding="utf-8").read()):
        lines = json_lines(text)
        assert len(lines) >= 5
        assert {o["level"] for o in lines} <= {"FATAL", "ERROR", "WARNING", "LOG", "DEBUG",
                                               "NOISE"}
        conn = [o for o in lines if o.get("db") == DBNAME and "client_id" in o]
        assert conn, "client lines carry client_id, db, user, addr"
        assert conn[0]["user"] == "testuser" and re.match(r"^127\.0\.0\.1:\d+$", conn[0]["addr"])
        assert isinstance(conn[0]["client_id"], int)
        assert any("server_id" in o for o in lines)
        assert any("password authentication failed" in o["msg"] for o in lines)
        assert any("no such database" in o["msg"] and "\ufffd" in o["msg"] for o in lines)
        stats = [o for o in lines if o["event"] == "stats"]
        if stats:
            for key in ("xacts_per_second", "queries_per_second", "received_bytes_per_second",
                        "sent_bytes_per_second", "avg_xact_us", "avg_query_us", "avg_wait_us"):
                assert isinstance(stats[0][key], int), key
            assert stats[0]["msg"].startswith("stats: ")


def test_text_stats_line(pgmux_factory):
    m = pgmux_factory(settings={"stats_period": "1"})
    assert m.psql("SELECT 1") == "1"
    m.wait_log(r"LOG stats: \d+ xacts/s, \d+ queries/s, in \d+ B/s, out \d+ B/s, "
               r"xact \d+ us, query \d+ us, wait \d+ us", since_mark=False)


def test_log_stats_off(pgmux_factory):
    m = pgmux_factory(settings={"stats_period": "1", "log_stats": "0"})
    m.mark_log()
    time.sleep(2.5)
    assert "stats:" not in m.new_log()


def test_logfile_reopened_on_sighup(pgmux_factory):
    m = pgmux_factory(settings={"log_format": "json"}, start=False)
    logfile = os.path.join(m.dir, "file.log")
    m.settings["logfile"] = logfile
    m.write_config()
    m.start()
    wait_until(lambda: os.path.exists(logfile) and os.path.getsize(logfile) > 0, 5)
    os.rename(logfile, logfile + ".1")
    m.reload()
    wait_until(lambda: os.path.exists(logfile), 5, msg="logfile reopened")
    assert m.psql("SELECT 1") == "1"
    wait_until(lambda: "login attempt" in open(logfile).read(), 5)
    json_lines(open(logfile).read())
    json_lines(open(logfile + ".1").read())
