"""During a graceful shutdown (SIGTERM: wait for clients) TCP stops accepting, but the Unix
socket stays open for the admin console only, as in PgBouncer 1.25."""
import signal

import psycopg2
import pytest

from pgmux_helpers import DBNAME, USERS, default_userlist, wait_until


def test_console_reachable_on_unix_socket_during_shutdown(pgmux_factory):
    ul = default_userlist()
    ul["sdadmin"] = "sdadminpw"
    m = pgmux_factory(settings={"admin_users": "sdadmin"}, userlist=ul)
    busy = psycopg2.connect(host="127.0.0.1", port=m.port, dbname=DBNAME, user="testuser",
                            password=USERS["testuser"])
    try:
        m.expect_exit = True
        m.signal(signal.SIGTERM)
        # TCP: no longer accepting
        def tcp_refused():
            try:
                psycopg2.connect(host="127.0.0.1", port=m.port, dbname=DBNAME, user="testuser",
                                 password=USERS["testuser"], connect_timeout=2).close()
                return False
            except psycopg2.OperationalError:
                return True
        wait_until(tcp_refused, 10, msg="TCP refused during shutdown")
        # Unix socket: the console works, a normal database does not
        con = psycopg2.connect(host=m.sockdir, port=m.port, dbname="pgbouncer", user="sdadmin",
                               password="sdadminpw", connect_timeout=5)
        try:
            con.autocommit = True
            cur = con.cursor()
            cur.execute("SHOW STATE")
            assert len(cur.fetchall()) == 3
        finally:
            con.close()
        with pytest.raises(psycopg2.OperationalError) as ei:
            psycopg2.connect(host=m.sockdir, port=m.port, dbname=DBNAME, user="testuser",
                             password=USERS["testuser"], connect_timeout=5)
        assert "shutting down" in str(ei.value)
        # the existing client is still served
        cur = busy.cursor()
        cur.execute("SELECT 41 + 1")
        assert cur.fetchone() == (42,)
    finally:
        busy.close()
    wait_until(lambda: not m.alive(), 10, msg="pgmux exits once its last client left")
