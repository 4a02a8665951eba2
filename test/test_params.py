"""Per-client parameters (TimeZone, application_name, DateStyle, client_encoding, ...) kept
apart when many clients share one server, ParameterStatus to the client, and the startup
parameters pgmux refuses or ignores."""

import pytest

from pgmux_helpers import PgError

ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney",
         "Africa/Cairo", "America/Sao_Paulo", "Asia/Kolkata", "Pacific/Auckland",
         "Europe/Helsinki", "America/Denver", "Asia/Singapore"]


@pytest.mark.parametrize("pool_mode", ["transaction", "statement"])
def test_timezone_appname_many_clients_one_server(pgmux_factory, pool_mode):
    """12 clients on a pool of 1: each SETs its own TimeZone and has its own application_name
    (startup parameter); after the others changed theirs, each still sees its own."""
    m = pgmux_factory(pool_mode=pool_mode, settings={"default_pool_size": 1})
    conns = []
    for i, zone in enumerate(ZONES):
        c = m.connect(autocommit=True, application_name="app_%d" % i)
        c.cursor().execute("SET TimeZone = %s", (zone,))
        conns.append(c)
    pids = set()
    for rnd in range(4):
        order = list(enumerate(conns)) if rnd % 2 == 0 else list(reversed(list(enumerate(conns))))
        for i, c in order:
            cur = c.cursor()
            cur.execute("SHOW TimeZone")
            assert cur.fetchone() == (ZONES[i],), "client %d sees another TimeZone" % i
            cur.execute("SELECT current_setting('application_name'), pg_backend_pid()")
            app, pid = cur.fetchone()
            assert app == "app_%d" % i, "client %d sees application_name %r" % (i, app)
            pids.add(pid)
            # the time zone is in effect, not only displayed
            cur.execute("SELECT to_char(TIMESTAMPTZ '2024-01-01 00:00:00+00', 'TZ')")
            assert cur.fetchone()[0] is not None
        # one client changes its zone in the middle of the round
        j = rnd % len(conns)
        ZONES_J = ZONES[(j + 1) % len(ZONES)]
        conns[j].cursor().execute("SET TimeZone = %s", (ZONES_J,))
        cur = conns[j].cursor()
        cur.execute("SHOW TimeZone")
        assert cur.fetchone() == (ZONES_J,)
        conns[j].cursor().execute("SET TimeZone = %s", (ZONES[j],))
    assert len(pids) == 1, "pool size 1 must mean one server, saw %s" % pids
    for c in conns:
        c.close()


def test_application_name_set_in_session(pgmux_factory):
    """SET application_name by one client does not show up for another on the same server."""
    m = pgmux_factory(pool_mode="transaction", settings={"default_pool_size": 1})
    a = m.connect(autocommit=True, application_name="alpha")
    b = m.connect(autocommit=True, application_name="beta")
    a.cursor().execute("SET application_name = 'alpha2'")
    cb = b.cursor()
    cb.execute("SELECT current_setting('application_name')")
    assert cb.fetchone() == ("beta",)
    ca = a.cursor()
    ca.execute("SELECT current_setting('application_name')")
    assert ca.fetchone() == ("alpha2",)
    a.close()
    b.close()


def test_startup_timezone_and_datestyle_raw(pgmux_factory):
    """Tracked parameters given in the StartupMessage apply, and the client is told through
    ParameterStatus."""
    m = pgmux_factory(pool_mode="transaction", settings={"default_pool_size": 1})
    r1 = m.raw()
    r1.login(TimeZone="Asia/Tokyo", DateStyle="SQL, DMY", application_name="raw1")
    r2 = m.raw()
    r2.login(TimeZone="America/New_York", DateStyle="ISO, MDY", application_name="raw2")
    assert r1.params.get("TimeZone") == "Asia/Tokyo"
    assert r2.params.get("TimeZone") == "America/New_York"
    assert r1.params.get("application_name") == "raw1"
    assert r1.params.get("DateStyle", "").startswith("SQL")
    for _ in range(3):
        assert r1.query("SELECT current_setting('TimeZone'), current_setting('DateStyle'), "
                        "DATE '2024-02-03'::text") == [("Asia/Tokyo", "SQL, DMY", "03/02/2024")]
        assert r2.query("SELECT current_setting('TimeZone'), current_setting('DateStyle'), "
                        "DATE '2024-02-03'::text") == [("America/New_York", "ISO, MDY",
                                                        "2024-02-03")]
    # SET reports the new value with ParameterStatus, like PostgreSQL
    r1.query("SET TimeZone = 'Europe/Paris'")
    assert r1.params.get("TimeZone") == "Europe/Paris"
    assert r2.query("SHOW TimeZone") == [("America/New_York",)]
    r1.close()
    r2.close()


def test_client_encoding_per_client(pgmux_factory):
    m = pgmux_factory(pool_mode="transaction", settings={"default_pool_size": 1})
    r1 = m.raw()
    r1.login(client_encoding="LATIN1")
    r2 = m.raw()
    r2.login(client_encoding="UTF8")
    assert r1.params.get("client_encoding") == "LATIN1"
    assert r2.params.get("client_encoding") == "UTF8"
    for _ in range(3):
        r1.send(r1.msg(b"Q", b"SELECT chr(233)\0"))
        data1 = _first_cell_bytes(r1)
        r2.send(r2.msg(b"Q", b"SELECT chr(233)\0"))
        data2 = _first_cell_bytes(r2)
        assert data1 == b"\xe9"
        assert data2 == "\u00e9".encode("utf-8")
    r1.close()
    r2.close()


def _first_cell_bytes(r):
    import struct
    cell = None
    while True:
        t, body = r.read_msg()
        if t == b"D" and cell is None:
            (ln,) = struct.unpack("!i", body[2:6])
            cell = body[6:6 + ln]
        elif t == b"E":
            raise PgError({})
        elif t == b"Z":
            return cell


def test_unsupported_startup_parameter(pgmux):
    r = pgmux.raw()
    with pytest.raises(PgError) as ei:
        r.login(extra_float_digits="2")
    assert "unsupported startup parameter" in ei.value.message
    assert "extra_float_digits" in ei.value.message
    r.close()
    # pgmux is fine and the next client works
    c = pgmux.connect(autocommit=True)
    cur = c.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    c.close()


def test_ignore_startup_parameters(pgmux_factory):
    m = pgmux_factory(settings={"ignore_startup_parameters": "extra_float_digits, geqo"})
    r = m.raw()
    r.login(extra_float_digits="2", geqo="off")
    assert r.query("SELECT 6") == [("6",)]
    r.close()
    # a parameter not in the list is still refused
    r = m.raw()
    with pytest.raises(PgError) as ei:
        r.login(work_mem="64MB")
    assert "unsupported startup parameter" in ei.value.message
    r.close()


def test_parameter_status_at_login(pgmux):
    """The client gets server_version, server_encoding, client_encoding, DateStyle, TimeZone,
    integer_datetimes and standard_conforming_strings as PostgreSQL sends them."""
    r = pgmux.raw()
    r.login()
    for k in ("server_version", "server_encoding", "client_encoding", "DateStyle", "TimeZone",
              "integer_datetimes", "standard_conforming_strings"):
        assert k in r.params, "missing ParameterStatus %s (got %s)" % (k, sorted(r.params))
    assert r.params["server_version"].startswith("15")
    assert r.params["server_encoding"] == "UTF8"
    assert r.backend_key is not None and len(r.backend_key) == 8
    r.close()
