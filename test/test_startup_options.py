"""The `options` startup parameter: several -c / --name=value settings in one string, each
tracked setting applied to the client's session, anything else refused or ignored as PgBouncer
does."""
import psycopg2
import pytest

from pgmux_helpers import DBNAME, USERS


def connect(m, options):
    return psycopg2.connect(host="127.0.0.1", port=m.port, dbname=DBNAME, user="testuser",
                            password=USERS["testuser"], options=options)


def test_several_tracked_settings_in_options(pgmux_factory):
    m = pgmux_factory(settings={"pool_mode": "transaction", "default_pool_size": 1})
    conn = connect(m, "-c search_path=pg_catalog --application-name=optapp -cTimeZone=UTC")
    try:
        cur = conn.cursor()
        cur.execute("SELECT current_setting('search_path'), current_setting('application_name'),"
                    " current_setting('TimeZone')")
        assert cur.fetchone() == ("pg_catalog", "optapp", "UTC")
    finally:
        conn.close()


def test_untracked_setting_in_options_is_refused(pgmux_factory):
    m = pgmux_factory()
    with pytest.raises(psycopg2.OperationalError) as ei:
        connect(m, "-c work_mem=64MB")
    assert "unsupported startup parameter in options: work_mem" in str(ei.value)


def test_options_ignored_when_listed(pgmux_factory):
    m = pgmux_factory(settings={"ignore_startup_parameters": "options"})
    conn = connect(m, "-c work_mem=64MB")
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    finally:
        conn.close()


def test_search_path_cannot_smuggle_statements(pgmux_factory, pg):
    """A search_path given at startup goes into pgmux's internal SET as one literal, so a ';'
    in it cannot run statements on the pooled server."""
    m = pgmux_factory(settings={"pool_mode": "transaction", "default_pool_size": 1})
    conn = connect(m, "-c search_path=x;CREATE\\ TABLE\\ smuggled(i\\ int)")
    try:
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SELECT current_setting('search_path')")
        assert cur.fetchone()[0] == '"x;CREATE TABLE smuggled(i int)"'
    finally:
        conn.close()
    assert pg.scalar("SELECT to_regclass('public.smuggled') IS NULL", dbname=DBNAME)
