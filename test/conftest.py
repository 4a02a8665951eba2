"""pytest fixtures for the pgmux integration suite.

Run through test/run.sh, which builds pgmux and sets PGMUX_BIN. By hand:
    PGMUX_BIN=build-test/pgmux /usr/bin/python3 -m pytest test/ -v
PGMUX_BIN=/usr/sbin/pgbouncer runs most of the suite against PgBouncer (same config format).
"""

import json
import os
import resource
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from pgmux_helpers import PG, Pgmux, SANITIZE, USERS, wait_until  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PGMUX_BIN = os.path.abspath(os.environ.get("PGMUX_BIN", os.path.join(ROOT, "build-test", "pgmux")))
IS_PGBOUNCER = os.path.basename(PGMUX_BIN).startswith("pgbouncer")


def pytest_configure(config):
    # Thousands of client sockets in this process and in pgmux (which inherits the limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 20000) if hard != resource.RLIM_INFINITY else 20000
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    config.addinivalue_line("markers", "slow: long-running test (pgbench, thousands of clients)")
    if os.geteuid() != 0:
        raise pytest.UsageError("the integration suite runs as root (initdb/pgmux use -u postgres)")
    if not os.access(PGMUX_BIN, os.X_OK):
        raise pytest.UsageError("PGMUX_BIN=%s is not an executable (build it first)" % PGMUX_BIN)


# ---------------------------------------------------------------------------------------------
# PostgreSQL


@pytest.fixture(scope="session")
def pg():
    p = PG()
    try:
        p.init()
    except Exception:
        try:
            with open(p.logfile) as f:
                sys.stderr.write(f.read())
        except OSError:
            pass
        p.cleanup()
        raise
    yield p
    p.cleanup()


@pytest.fixture
def pg_up(pg):
    """pg, guaranteed running at the start and end of the test (for restart tests)."""
    if not pg.running():
        pg.start()
    yield pg
    if not pg.running():
        pg.start()


# ---------------------------------------------------------------------------------------------
# pgmux


@pytest.fixture(params=["session", "transaction", "statement"])
def pool_mode(request):
    return request.param


@pytest.fixture
def pgmux_factory(request, pg):
    """Factory: pgmux_factory(pool_mode=..., settings={...}, databases=..., users=...,
    userlist=..., start=True) -> Pgmux. Every instance is stopped and checked at teardown."""
    instances = []
    request.node._pgmux_instances = instances

    def make(pool_mode="transaction", settings=None, databases=None, users=None, userlist=None,
             extra_ini="", start=True):
        m = Pgmux(PGMUX_BIN, pg, pool_mode=pool_mode, settings=settings, databases=databases,
                  users=users, userlist=userlist, extra_ini=extra_ini)
        instances.append(m)
        if start:
            m.start()
        return m

    yield make

    errors = []
    for m in instances:
        died = None
        if m.proc is not None and m.proc.poll() is not None and not m.expect_exit:
            died = m.proc.returncode
        m.stop()
        if died is not None:
            errors.append("pgmux (pid %d) exited on its own during the test, status %s"
                          % (m.pid, died))
        probs = m.problems()
        if probs:
            errors.append("pgmux log/sanitizer reports problems:\n" + "\n".join(probs[:50]))
    # Let PostgreSQL notice the closed server connections so the next test starts clean.
    if pg.running():
        try:
            wait_until(lambda: pg.count_backends() == 0, 10, msg="test backends gone")
        except AssertionError:
            for row in pg.backends():
                pg.terminate(row[0])
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)
    for m in instances:
        m.cleanup()


@pytest.fixture
def pgmux(pgmux_factory):
    """A pgmux in transaction mode with the default settings."""
    return pgmux_factory()


@pytest.fixture
def pgmux_mode(pgmux_factory, pool_mode):
    """A pgmux in each pool mode (parametrized by the pool_mode fixture)."""
    return pgmux_factory(pool_mode=pool_mode)


# ---------------------------------------------------------------------------------------------
# Reporting: attach pgmux logs to failures, count outcomes for run.sh.

_outcomes = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for i, m in enumerate(getattr(item, "_pgmux_instances", [])):
            lines = m.log().splitlines()
            tail = "\n".join(lines[-150:])
            rep.sections.append(("pgmux log #%d (%s, last %d of %d lines)"
                                 % (i, m.logfile, min(150, len(lines)), len(lines)), tail))


def pytest_runtest_logreport(report):
    prev = _outcomes.get(report.nodeid)
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.skipped and prev != "failed":
        _outcomes[report.nodeid] = "skipped"
    elif report.when == "call" and report.passed and prev is None:
        _outcomes[report.nodeid] = "passed"


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("PGMUX_RESULTS_FILE")
    if not path:
        return
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for v in _outcomes.values():
        counts[v] += 1
    counts["failed_tests"] = sorted(k for k, v in _outcomes.items() if v == "failed")
    with open(path, "w") as f:
        json.dump(counts, f)


@pytest.fixture
def sanitize():
    return SANITIZE


@pytest.fixture
def is_pgbouncer():
    return IS_PGBOUNCER


def now():
    return time.monotonic()


__all__ = ["USERS"]
