"""Real drivers with their default prepared-statement behaviour through pgmux in transaction
mode (issue 7): psycopg 3, asyncpg, node-postgres, postgres.js, PgJDBC and pgbench -M prepared.

The pool is small (default_pool_size=3) so that clients really move between server connections;
where a test can see backend pids it asserts that they did. Every result is checked.

Node and Java parts live in test/drivers/ (install with test/drivers/setup.sh). Knob for checking
the tests themselves:
    PGMUX_DRIVERS_MODE=transaction (default) | session | direct
session runs the matrix through the pooler in session mode (PgBouncer 1.18 passes it that way),
direct talks to PostgreSQL without a pooler. Tests about server connections being replaced
only make sense through a transaction-mode pooler and are skipped otherwise.
"""

import asyncio
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import time

import psycopg
import psycopg.pq
import pytest

from pgmux_helpers import DBNAME, PGBENCH, USERS, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVERS = os.path.join(HERE, "drivers")
NODE_MODULES = os.path.join(DRIVERS, "node_modules")
JDBC_JAR = os.environ.get("PGJDBC_JAR", "/usr/share/java/postgresql.jar")

IS_PGBOUNCER = os.path.basename(os.environ.get("PGMUX_BIN", "")).startswith("pgbouncer")
MODE = os.environ.get("PGMUX_DRIVERS_MODE", "transaction")
assert MODE in ("transaction", "session", "direct"), MODE
POOL_SIZE = 3
USER = "testuser"
PASSWORD = USERS[USER]
SUBPROCESS_TIMEOUT = 60  # the programs give up by themselves after 40 s
THREAD_TIMEOUT = 40

transaction_only = pytest.mark.skipif(MODE != "transaction",
                                      reason="needs a transaction-mode pooler")


# ---------------------------------------------------------------------------------------------
# Where the clients connect


class Target:
    """The address the drivers use (pgmux, or PostgreSQL itself in direct mode)."""

    def __init__(self, port, mux=None, pg=None, dbname=DBNAME):
        self.host = "127.0.0.1"
        self.port = port
        self.mux = mux
        self.pg = pg
        self.dbname = dbname

    def connect3(self, prepare_threshold=0, autocommit=True, **kw):
        """psycopg 3 connection; prepare_threshold=0 prepares every statement."""
        c = psycopg.connect(host=self.host, port=self.port, dbname=self.dbname, user=USER,
                            password=PASSWORD, autocommit=autocommit, connect_timeout=10, **kw)
        c.prepare_threshold = prepare_threshold
        return c

    def env(self):
        """libpq-style variables for the Node and Java programs."""
        return dict(os.environ, PGHOST=self.host, PGPORT=str(self.port), PGDATABASE=self.dbname,
                    PGUSER=USER, PGPASSWORD=PASSWORD)

    def moved(self, pid_count, what):
        """In transaction mode through a small pool, clients must have used several servers."""
        if MODE == "transaction":
            assert pid_count > 1, "%s: every query ran on the same server connection; the " \
                "test did not exercise moving between servers" % what

    def log_tail(self, n=60):
        if self.mux is None:
            return ""
        return "\n".join(self.mux.log().splitlines()[-n:])


def make_target(pgmux_factory, pg, settings=None, databases=None, dbname=DBNAME):
    if MODE == "direct":
        return Target(pg.port, pg=pg, dbname=dbname)
    s = {"default_pool_size": POOL_SIZE if MODE == "transaction" else 70,
         "max_client_conn": 400,
         # what every PgBouncer deployment with PgJDBC has (it sends extra_float_digits)
         "ignore_startup_parameters": "extra_float_digits"}
    s.update(settings or {})
    m = pgmux_factory(pool_mode=MODE, settings=s, databases=databases)
    return Target(m.port, mux=m, pg=pg, dbname=dbname)


@pytest.fixture
def target(pgmux_factory, pg):
    return make_target(pgmux_factory, pg)


@pytest.fixture
def table(pg):
    """table(name, columns) -> creates a fresh table in p0 directly on PostgreSQL."""
    made = []

    def make(name, columns):
        pg.sql("DROP TABLE IF EXISTS %s; CREATE TABLE %s (%s); GRANT ALL ON %s TO PUBLIC"
               % (name, name, columns, name), dbname=DBNAME)
        made.append(name)
        return name

    yield make
    for name in made:
        pg.sql("DROP TABLE IF EXISTS %s" % name, dbname=DBNAME)


def run_threads(n, fn):
    """Run fn(i) in n threads; return the results; raise the first exception (with its thread)."""
    results, errors = [None] * n, []

    def body(i):
        try:
            results[i] = fn(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append((i, e))

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + THREAD_TIMEOUT
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    stuck = sum(t.is_alive() for t in threads)
    if errors:
        i, e = errors[0]
        raise AssertionError("%d of %d threads failed; thread %d: %s: %s"
                             % (len(errors), n, i, type(e).__name__, e)) from e
    assert not stuck, "%d of %d threads still running after %d s" % (stuck, n, THREAD_TIMEOUT)
    return results


def run_program(cmd, target, extra_env=None, cwd=None):
    env = target.env()
    env.update(extra_env or {})
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=SUBPROCESS_TIMEOUT)
    print("%s: exit %d in %.1f s" % (" ".join(cmd[:3]), r.returncode, time.monotonic() - t0))
    print(r.stdout[-4000:])
    if r.stderr.strip():
        print("stderr:", r.stderr[-4000:])
    return r


# ---------------------------------------------------------------------------------------------
# psycopg 3


@pytest.mark.parametrize("threshold", [0, 5], ids=["prepare_threshold=0", "default_threshold"])
def test_psycopg_prepare_20_threads(target, threshold):
    """prepare_threshold=0: every statement is a named one (_pg3_0, _pg3_1, ... on every
    connection, the first of them with a text of its own per connection). psycopg's default
    (5): the first executions are unnamed, then the statement is prepared."""
    rounds = 40

    def client(i):
        pids = set()
        with target.connect3(prepare_threshold=threshold) as c:
            for j in range(rounds):
                own = c.execute("SELECT %s::int + " + str(i * 100000) + ", pg_backend_pid()",
                                (j,)).fetchone()
                assert own[0] == i * 100000 + j, (i, j, own)
                pids.add(own[1])
                row = c.execute("SELECT %s::text || '-' || %s::text, %s::int * 3",
                                ("t%d" % i, str(j), j)).fetchone()
                assert row == ("t%d-%d" % (i, j), j * 3), (i, j, row)
                rows = c.execute("SELECT g FROM generate_series(1, %s::int) g",
                                 (j % 5 + 1,)).fetchall()
                assert rows == [(k,) for k in range(1, j % 5 + 2)], (i, j, rows)
            # a transaction block with prepared statements inside
            with c.transaction():
                a = c.execute("SELECT %s::int + " + str(i * 100000), (7,)).fetchone()[0]
                b = c.execute("SELECT %s::int * 3", (5,)).fetchone()
            assert a == i * 100000 + 7 and b == (15,)
        return pids

    pid_sets = run_threads(20, client)
    target.moved(max(len(p) for p in pid_sets), "psycopg threads")


SHAPES = [
    ("SELECT %s::int + 1", lambda n: (n,), lambda n: [(n + 1,)]),
    ("SELECT %s::text || 'x', %s::int", lambda n: ("v%d" % n, n), lambda n: [("v%dx" % n, n)]),
    ("SELECT g FROM generate_series(%s::int, %s::int + 2) g", lambda n: (n, n),
     lambda n: [(n,), (n + 1,), (n + 2,)]),
    ("SELECT %s::bigint * 1000000000, %s::bool", lambda n: (n, n % 2 == 0),
     lambda n: [(n * 1000000000, n % 2 == 0)]),
]


def test_psycopg_pipeline_100_statements(target):
    """A 100-statement pipeline of prepared statements, synced every 10 statements (so in
    transaction mode the groups may run on different servers), run by 4 clients at once."""

    def client(i):
        pids = set()
        with target.connect3(prepare_threshold=0) as c:
            for rep in range(3):
                cursors = []
                with c.pipeline() as p:
                    for k in range(100):
                        n = i * 1000 + rep * 100 + k
                        sql, args, _ = SHAPES[k % len(SHAPES)]
                        cursors.append((n, k, c.execute(sql, args(n))))
                        if k % 10 == 9:
                            cursors.append((None, None, c.execute("SELECT pg_backend_pid()")))
                            p.sync()
                for n, k, cur in cursors:
                    if n is None:
                        pids.add(cur.fetchone()[0])
                        continue
                    want = SHAPES[k % len(SHAPES)][2](n)
                    got = cur.fetchall()
                    assert got == want, (i, rep, k, got, want)
        return pids

    pid_sets = run_threads(4, client)
    target.moved(max(len(p) for p in pid_sets), "psycopg pipelines")


def test_psycopg_pipeline_error_in_the_middle(target):
    """psycopg 3 pipelines: good prepared statements, then a failing Execute of an already
    prepared statement and more statements the server skips, then good statements after the
    Sync (old and new ones), on 4 clients at once."""

    def client(i):
        with target.connect3(prepare_threshold=0) as c:
            for rep in range(5):
                base = i * 1000 + rep * 100
                with c.pipeline() as p:
                    good1 = [c.execute("SELECT 100 / %s::int", (k + 1,)) for k in range(10)]
                    good1 += [c.execute("SELECT %s::int - " + str(i), (k,)) for k in range(10)]
                    p.sync()
                    # psycopg raises the error at whichever call next reads results
                    raised, skipped = [], []
                    for sql, args in [("SELECT 100 / %s::int", (0,)),
                                      ("SELECT %s::int - " + str(i), (7,)),
                                      ("SELECT 100 / %s::int", (5,)),
                                      (None, None)]:
                        try:
                            if sql is None:
                                p.sync()
                            else:
                                skipped.append(c.execute(sql, args))
                        except psycopg.Error as e:
                            raised.append(e)
                    assert raised and type(raised[0]) is psycopg.errors.DivisionByZero, raised
                    assert all(type(e) is psycopg.errors.PipelineAborted
                               for e in raised[1:]), raised
                    good2 = [c.execute("SELECT %s::int - " + str(i), (base + k,))
                             for k in range(10)]
                    good2 += [c.execute("SELECT %s::int + " + str(base), (k,))  # new ones
                              for k in range(10)]
                    good3 = [c.execute("SELECT 100 / %s::int", (k + 1,)) for k in range(10)]
                assert [cur.fetchone()[0] for cur in good1] == \
                    [100 // (k + 1) for k in range(10)] + [k - i for k in range(10)]
                for cur in skipped:
                    with pytest.raises(psycopg.Error):
                        cur.fetchone()
                assert [cur.fetchone()[0] for cur in good2] == \
                    [base + k - i for k in range(10)] + [base + k for k in range(10)]
                assert [cur.fetchone()[0] for cur in good3] == [100 // (k + 1) for k in range(10)]
                # and outside pipelines, the same statements still work
                assert c.execute("SELECT %s::int + " + str(base), (3,)).fetchone() == (base + 3,)
                assert c.execute("SELECT 100 / %s::int", (4,)).fetchone() == (25,)
                with pytest.raises(psycopg.errors.DivisionByZero):
                    c.execute("SELECT 100 / %s::int", (0,))
                assert c.execute("SELECT 100 / %s::int", (50,)).fetchone() == (2,)

    run_threads(4, client)


def pq_pipeline(pc, steps):
    """Run steps in libpq pipeline mode; return one result per step. Steps: ("prepare", name,
    sql), ("exec", name, params), ("describe", name), ("sync",)."""
    ES = psycopg.pq.ExecStatus
    pc.enter_pipeline_mode()
    try:
        for s in steps:
            if s[0] == "prepare":
                pc.send_prepare(s[1], s[2])
            elif s[0] == "exec":
                pc.send_query_prepared(s[1], s[2])
            elif s[0] == "describe":
                pc.send_describe_prepared(s[1])
            else:
                pc.pipeline_sync()
        out = []
        for s in steps:
            r = pc.get_result()
            if s[0] == "sync":
                assert r.status == ES.PIPELINE_SYNC, status_name(r)
            else:
                assert pc.get_result() is None
            out.append(r)
        return out
    finally:
        pc.exit_pipeline_mode()


def test_libpq_pipeline_parse_skipped_after_error(target):
    """A Parse the server skips (it comes after an error, before Sync) creates nothing: using the
    name afterwards errors like PostgreSQL (26000), and preparing the name again succeeds (a
    pooler that registered the skipped Parse would answer 42P05 'already exists')."""
    ES = psycopg.pq.ExecStatus

    def client(i):
        with target.connect3(prepare_threshold=None) as c:
            pc = c.pgconn
            for rep in range(5):
                div, pa, pb = (b"drv_%s_%d" % (n, rep) for n in (b"div", b"pa", b"pb"))
                r = pq_pipeline(pc, [
                    ("prepare", div, b"SELECT 100 / $1::int"),
                    ("exec", div, [b"4"]),
                    ("sync",),
                    ("exec", div, [b"0"]),
                    ("prepare", pa, b"SELECT $1::int + %d" % i),
                    ("prepare", pb, b"SELECT $1::int * %d" % i),
                    ("exec", pa, [b"1"]),
                    ("sync",),
                    ("exec", div, [b"20"]),
                    ("sync",),
                ])
                assert [x.status for x in r] == [
                    ES.COMMAND_OK, ES.TUPLES_OK, ES.PIPELINE_SYNC,
                    ES.FATAL_ERROR, ES.PIPELINE_ABORTED, ES.PIPELINE_ABORTED,
                    ES.PIPELINE_ABORTED, ES.PIPELINE_SYNC,
                    ES.TUPLES_OK, ES.PIPELINE_SYNC], [status_name(x) for x in r]
                assert r[1].get_value(0, 0) == b"25" and r[8].get_value(0, 0) == b"5"
                # pa: prepared again, as a driver does after an aborted pipeline
                pq_ok(pc.prepare(pa, b"SELECT $1::int + %d" % i))
                assert pq_value(pc.exec_prepared(pa, [b"1"])) == str(1 + i)
                # pb: never created
                code, msg = pq_error(pc.exec_prepared(pb, [b"1"]))
                assert code == "26000", (code, msg)
                pq_ok(pc.prepare(pb, b"SELECT $1::int * %d" % i))
                assert pq_value(pc.exec_prepared(pb, [b"3"])) == str(3 * i)

    run_threads(4, client)


# ---------------------------------------------------------------------------------------------
# asyncpg


def test_asyncpg_default_cache_50_connections(target):
    """asyncpg with its default statement cache (named statements __asyncpg_stmt_N__, the same
    names on every connection): 50 connections at once, parameterized queries many times."""
    asyncpg = pytest.importorskip("asyncpg", reason="python3-asyncpg: run test/drivers/setup.sh")

    rounds = 30

    async def client(i):
        conn = await asyncpg.connect(host=target.host, port=target.port, user=USER,
                                     password=PASSWORD, database=target.dbname, timeout=20)
        pids = set()
        try:
            for j in range(rounds):
                # own text per connection: __asyncpg_stmt_1__ is something else on each one
                v = await conn.fetchval("SELECT $1::int + " + str(i * 100000), j)
                assert v == i * 100000 + j, (i, j, v)
                row = await conn.fetchrow("SELECT $1::text AS s, $2::int * 2 AS d, "
                                          "pg_backend_pid() AS pid", "c%d" % i, j)
                assert (row["s"], row["d"]) == ("c%d" % i, j * 2), (i, j, row)
                pids.add(row["pid"])
                rows = await conn.fetch("SELECT g, g * $2::int AS m FROM generate_series(1, $1) g",
                                        j % 4 + 1, i)
                assert [tuple(r) for r in rows] == [(g, g * i) for g in range(1, j % 4 + 2)]
            async with conn.transaction():
                await conn.execute("SELECT $1::int", 1)
                v = await conn.fetchval("SELECT $1::int + " + str(i * 100000), -1)
                assert v == i * 100000 - 1
        finally:
            await conn.close()
        return pids

    async def main():
        return await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(50))),
                                      THREAD_TIMEOUT)

    pid_sets = asyncio.run(main())
    target.moved(max(len(p) for p in pid_sets), "asyncpg connections")


def test_asyncpg_prepare_describe(target):
    """conn.prepare() is Parse + Describe of a named statement; its parameter and column types
    must come back, and the statement must work from any server afterwards."""
    asyncpg = pytest.importorskip("asyncpg", reason="python3-asyncpg: run test/drivers/setup.sh")

    async def client(i):
        conn = await asyncpg.connect(host=target.host, port=target.port, user=USER,
                                     password=PASSWORD, database=target.dbname, timeout=20)
        try:
            for j in range(10):
                st = await conn.prepare("SELECT $1::int AS a, $2::text AS b, "
                                        "$3::numeric * %d AS c" % i)
                assert [t.name for t in st.get_parameters()] == ["int4", "text", "numeric"]
                assert [(a.name, a.type.name) for a in st.get_attributes()] == \
                    [("a", "int4"), ("b", "text"), ("c", "numeric")]
                for k in range(3):
                    row = await st.fetchrow(j, "x%d" % k, 2)
                    assert (row["a"], row["b"], int(row["c"])) == (j, "x%d" % k, 2 * i)
        finally:
            await conn.close()

    async def main():
        await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(10))), THREAD_TIMEOUT)

    asyncio.run(main())


def test_asyncpg_cache_eviction_closes(target):
    """More distinct queries than asyncpg's statement cache holds (100): asyncpg evicts and
    closes statements (Close messages) while it keeps preparing new ones, on 10 connections."""
    asyncpg = pytest.importorskip("asyncpg", reason="python3-asyncpg: run test/drivers/setup.sh")

    async def client(i):
        conn = await asyncpg.connect(host=target.host, port=target.port, user=USER,
                                     password=PASSWORD, database=target.dbname, timeout=20)
        try:
            for rep in range(2):
                for k in range(130):
                    v = await conn.fetchval("SELECT $1::int + %d + %d" % (k, i * 1000), rep)
                    assert v == rep + k + i * 1000, (i, rep, k, v)
        finally:
            await conn.close()

    async def main():
        await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(10))), THREAD_TIMEOUT)

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------
# Node: node-postgres and postgres.js


def node_script(name, target, extra_env=None):
    if not os.path.isdir(os.path.join(NODE_MODULES, "pg")) or \
            not os.path.isdir(os.path.join(NODE_MODULES, "postgres")):
        pytest.skip("node drivers not installed: run test/drivers/setup.sh")
    node = shutil.which("node")
    if not node:
        pytest.skip("node not installed")
    r = run_program([node, os.path.join(DRIVERS, name)], target, extra_env, cwd=DRIVERS)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, "no JSON from %s (exit %d): %s %s" % (name, r.returncode, r.stdout, r.stderr)
    out = json.loads(lines[-1])
    assert not out["errors"], "%s: driver errors: %s\npooler log:\n%s" % (
        name, out["errors"][:5], target.log_tail())
    assert r.returncode == 0, r.stderr
    assert out["mismatches"] == 0, "%s: %d wrong results, e.g. %s" % (
        name, out["mismatches"], out["examples"])
    return out


def test_node_pg_named_query_20_pooled_clients(target):
    rounds = 30
    out = node_script("node_pg.js", target, {"ROUNDS": str(rounds)})
    assert out["pool_total"] == 20, out
    # 20 clients x rounds, 400 pool.query, 10 clashing clients x rounds
    assert out["queries"] == 20 * rounds + 400 + 10 * rounds, out
    target.moved(out["backend_pids"], "node-postgres pooled clients")


def test_postgresjs_defaults_200_concurrent(target):
    batches = 3
    out = node_script("postgresjs.js", target, {"BATCHES": str(batches)})
    assert out["queries"] == 200 * batches, out
    # postgres.js retries a query whose prepared statement vanished; through a correct pooler
    # that never happens.
    assert out["attempts"] == out["queries"], \
        "postgres.js had to retry %d queries (prepared statement missing on the server)" % (
            out["attempts"] - out["queries"])
    target.moved(out["backend_pids"], "postgres.js connections")


# ---------------------------------------------------------------------------------------------
# PgJDBC


@pytest.fixture(scope="module")
def jdbc_classes():
    javac, java = shutil.which("javac"), shutil.which("java")
    if not (javac and java):
        pytest.skip("no JDK: run test/drivers/setup.sh")
    if not os.path.exists(JDBC_JAR):
        pytest.skip("no %s: run test/drivers/setup.sh (libpostgresql-jdbc-java)" % JDBC_JAR)
    out = tempfile.mkdtemp(prefix="pgmux-jdbc-")
    r = subprocess.run([javac, "-nowarn", "-d", out, "-cp", JDBC_JAR,
                        os.path.join(DRIVERS, "JdbcMatrix.java")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert r.returncode == 0, r.stdout
    yield out
    shutil.rmtree(out, ignore_errors=True)


def run_jdbc(jdbc_classes, target, mode):
    r = run_program([shutil.which("java"), "-cp", JDBC_JAR + ":" + jdbc_classes, "JdbcMatrix",
                     mode], target)
    vals, errors, examples = {}, [], []
    for line in r.stdout.splitlines():
        k, _, v = line.partition("=")
        if k == "error":
            errors.append(v)
        elif k == "example":
            examples.append(v)
        elif k:
            vals[k] = v
    assert not errors, "PgJDBC %s: %d errors: %s\npooler log:\n%s" % (
        mode, len(errors), errors[:5], target.log_tail())
    assert r.returncode == 0, r.stdout + r.stderr
    assert int(vals["mismatches"]) == 0, "wrong results: %s" % examples
    return {k: int(v) for k, v in vals.items()}


def test_jdbc_past_prepare_threshold(jdbc_classes, target):
    out = run_jdbc(jdbc_classes, target, "prepared")
    assert out["queries"] == 10 * 20 * 2, out
    assert out["server_prepared"] == 10, out  # every connection went past prepareThreshold
    target.moved(out["backend_pids"], "PgJDBC connections")


def test_jdbc_batch_insert_1000(jdbc_classes, target, table, pg):
    table("drv_jdbc_batch", "id int PRIMARY KEY, t text NOT NULL, v bigint NOT NULL")
    out = run_jdbc(jdbc_classes, target, "batch")
    assert out["queries"] == 4 * (1 + 6), out
    # checked again directly on PostgreSQL
    n, s, bad = pg.sql("SELECT count(*), sum(id), count(*) FILTER (WHERE t <> 'row' || id OR "
                       "v <> id * 7) FROM drv_jdbc_batch", dbname=DBNAME)[0]
    assert (n, s, bad) == (4000, sum(range(4000)), 0)


def test_jdbc_rollback(jdbc_classes, target, table, pg):
    table("drv_jdbc_rb", "id int PRIMARY KEY, owner int NOT NULL")
    out = run_jdbc(jdbc_classes, target, "rollback")
    assert out["queries"] == 4 * 3 * (10 + 1 + 1 + 10 + 1), out
    rows = pg.sql("SELECT owner, count(*) FROM drv_jdbc_rb GROUP BY owner ORDER BY owner",
                  dbname=DBNAME)
    assert [tuple(r) for r in rows] == [(t, 30) for t in range(4)]
    # nothing left open
    idle = pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state LIKE "
                     "'idle in transaction%%'", [DBNAME])
    assert idle == 0


# ---------------------------------------------------------------------------------------------
# pgbench -M prepared

BENCH_DB = "drvbench"


@pytest.fixture
def bench_db(pg):
    pg.sql("DROP DATABASE IF EXISTS %s" % BENCH_DB)
    pg.sql("CREATE DATABASE %s OWNER %s" % (BENCH_DB, USER))
    env = dict(os.environ, PGPASSWORD=PASSWORD)
    r = subprocess.run([PGBENCH, "-i", "-s", "1", "-q", "-h", "127.0.0.1", "-p", str(pg.port),
                        "-U", USER, BENCH_DB], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=120)
    assert r.returncode == 0, r.stdout
    yield BENCH_DB
    pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
           [BENCH_DB])
    wait_until(lambda: pg.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                 [BENCH_DB]) == 0, 10)
    pg.sql("DROP DATABASE IF EXISTS %s" % BENCH_DB)


def test_pgbench_prepared_select_only(pgmux_factory, pg, bench_db):
    t = make_target(pgmux_factory, pg, dbname=bench_db, databases={
        bench_db: "host=127.0.0.1 port=%d dbname=%s" % (pg.port, bench_db)})
    duration = 10
    r = subprocess.run([PGBENCH, "-M", "prepared", "-S", "-n", "-c", "20", "-j", "2", "-T",
                        str(duration), "-h", t.host, "-p", str(t.port), "-U", USER, bench_db],
                       env=dict(os.environ, PGPASSWORD=PASSWORD), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=duration + 60)
    print(r.stdout)
    errs = [ln for ln in r.stdout.splitlines() if re.search(r"error|abort|FATAL", ln, re.I)]
    assert r.returncode == 0 and not errs, "pgbench failed (exit %d): %s\npooler log:\n%s" % (
        r.returncode, "\n".join(errs[:10]) or r.stdout[-2000:], t.log_tail())
    m = re.search(r"number of transactions actually processed: (\d+)", r.stdout)
    assert m and int(m.group(1)) > 0, r.stdout
    failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
    assert failed is None or int(failed.group(1)) == 0, r.stdout


# ---------------------------------------------------------------------------------------------
# Protocol corners, through psycopg 3's libpq wrapper (psycopg.pq) for exact control


def status_name(res):
    return psycopg.pq.ExecStatus(res.status).name


def pq_ok(res, status=None):
    want = status if status is not None else (psycopg.pq.ExecStatus.COMMAND_OK,
                                              psycopg.pq.ExecStatus.TUPLES_OK)
    if not isinstance(want, tuple):
        want = (want,)
    assert res.status in want, "status %s: %s" % (
        status_name(res), (res.error_message or b"").decode(errors="replace"))
    return res


def pq_value(res, row=0, col=0):
    pq_ok(res, psycopg.pq.ExecStatus.TUPLES_OK)
    v = res.get_value(row, col)
    return None if v is None else v.decode()


def pq_error(res):
    assert res.status == psycopg.pq.ExecStatus.FATAL_ERROR, \
        "expected an error, got %s" % status_name(res)
    return (res.error_field(psycopg.pq.DiagnosticField.SQLSTATE).decode(),
            res.error_field(psycopg.pq.DiagnosticField.MESSAGE_PRIMARY).decode())


@pytest.mark.parametrize("command", ["DEALLOCATE ALL", "DISCARD ALL"])
def test_sql_deallocate_all_forgets_statements(target, command):
    """After DEALLOCATE ALL / DISCARD ALL sent as SQL, the client's own statements are gone (the
    next use errors like PostgreSQL: 26000 'prepared statement "x" does not exist'), re-preparing
    the same name works, and other clients' statements of the same name are untouched."""
    workers = 4
    stop = threading.Event()
    go = threading.Barrier(workers + 1, timeout=THREAD_TIMEOUT)

    def other(i):
        # same statement name, different text, on other clients: busy all along
        try:
            c = target.connect3(prepare_threshold=None)
            pc = c.pgconn
            pq_ok(pc.prepare(b"drv_s1", b"SELECT $1::int * 1000 + " + str(i).encode()))
        except BaseException:
            go.abort()
            raise
        with c:
            go.wait()
            n = 0
            while not stop.is_set() or n < 20:
                assert pq_value(pc.exec_prepared(b"drv_s1", [str(n).encode()])) == \
                    str(n * 1000 + i)
                n += 1
            return n

    def main():
        try:
            go.wait()
            with target.connect3(prepare_threshold=None) as c:
                pc = c.pgconn
                for rep in range(3):
                    pq_ok(pc.prepare(b"drv_s1", b"SELECT $1::int + 1"))
                    pq_ok(pc.prepare(b"drv_s2", b"SELECT $1::text || 'y'"))
                    for k in range(20):  # used from several servers
                        assert pq_value(pc.exec_prepared(b"drv_s1", [str(k).encode()])) == \
                            str(k + 1)
                        assert pq_value(pc.exec_prepared(b"drv_s2", [b"x"])) == "xy"
                    pq_ok(pc.exec_(command.encode()))
                    for name in (b"drv_s1", b"drv_s2"):
                        for _ in range(3):
                            code, msg = pq_error(pc.exec_prepared(name, [b"1"]))
                            assert code == "26000", (code, msg)
                            assert msg == 'prepared statement "%s" does not exist' % \
                                name.decode(), msg
                    code, msg = pq_error(pc.describe_prepared(b"drv_s1"))
                    assert code == "26000", (code, msg)
                    # the connection is fine after those errors
                    assert pq_value(pc.exec_params(b"SELECT $1::int", [b"5"])) == "5"
                    # the old name can be prepared again, with another text
                    pq_ok(pc.prepare(b"drv_s1", b"SELECT $1::int + 2"))
                    for k in range(10):
                        assert pq_value(pc.exec_prepared(b"drv_s1", [str(k).encode()])) == \
                            str(k + 2)
                    pq_ok(pc.exec_(command.encode()))  # clean slate for the next round
        finally:
            stop.set()

    def worker(i):
        return main() if i == workers else other(i)

    run_threads(workers + 1, worker)


def test_statement_larger_than_pkt_buf(target):
    """Query texts of ~10 KB (several times pkt_buf), different on every client, prepared and
    used from 6 clients; plus a 100 KB parameter through a prepared statement."""

    def client(i):
        filler = ("c%d-" % i) * (10000 // len("c%d-" % i))
        sql = ("SELECT %%s::int + length('%s') AS v, %%s::text AS t /* %s */"
               % (filler, "z" * 200))
        assert len(sql) > 10000
        big = ("p%d" % i) * 50000
        md5 = hashlib.md5(big.encode()).hexdigest()
        with target.connect3(prepare_threshold=0) as c:
            for j in range(20):
                row = c.execute(sql, (j, "t%d" % j)).fetchone()
                assert row == (j + len(filler), "t%d" % j), (i, j, row)
                row = c.execute("SELECT md5(%s::text), length(%s::text)", (big, big)).fetchone()
                assert row == (md5, len(big)), (i, j)
            # binary Describe of the big statement, low level
            pc = c.pgconn
            pq_ok(pc.prepare(b"drv_big", sql.replace("%s", "$1", 1).replace("%s", "$2", 1)
                             .encode()))
            for j in range(5):
                d = pq_ok(pc.describe_prepared(b"drv_big"))
                assert d.nparams == 2 and d.nfields == 2
                assert pq_value(pc.exec_prepared(b"drv_big", [b"1", b"x"])) == \
                    str(1 + len(filler))

    run_threads(6, client)


def test_describe_named_statement(target):
    """Describe of a named statement (psycopg 3's describe_prepared, and cursor.description with
    prepare=True), in transactions of its own, from clients that share statement names."""
    INT4, TEXT, TIMESTAMPTZ, NUMERIC = 23, 25, 1184, 1700

    def client(i):
        with target.connect3(prepare_threshold=None) as c:
            pc = c.pgconn
            q = ("SELECT $1::int AS a, $2::text AS b, now() AS c, $2::text || '%d' AS d%d"
                 % (i, i)).encode()
            pq_ok(pc.prepare(b"drv_desc", q))
            for j in range(15):
                d = pq_ok(pc.describe_prepared(b"drv_desc"))
                assert d.nparams == 2 and [d.param_type(0), d.param_type(1)] == [INT4, TEXT]
                assert d.nfields == 4
                assert [d.fname(k) for k in range(4)] == [b"a", b"b", b"c", b"d%d" % i]
                assert [d.ftype(k) for k in range(4)] == [INT4, TEXT, TIMESTAMPTZ, TEXT]
                r = pc.exec_prepared(b"drv_desc", [str(j).encode(), b"w"])
                assert pq_value(r, 0, 0) == str(j) and pq_value(r, 0, 3) == "w%d" % i
            # a statement that does not exist
            code, _ = pq_error(pc.describe_prepared(b"drv_nope"))
            assert code == "26000"
            # high level: prepared cursor and its description
            c.prepare_threshold = 0
            for j in range(5):
                cur = c.execute("SELECT %s::numeric * " + str(i) + " AS n" + str(i), (j,),
                                prepare=True)
                assert [(col.name, col.type_code) for col in cur.description] == \
                    [("n%d" % i, NUMERIC)]
                assert cur.fetchone() == (j * i,)

    run_threads(8, client)


def test_many_statements_per_client(pgmux_factory, pg):
    """Each client uses 60 distinct prepared statements in turn, more than a server connection
    keeps with max_prepared_statements=20 (PgBouncer < 1.21 does not know the key), the same
    names _pg3_N with other texts on other clients."""
    target = make_target(pgmux_factory, pg, settings=None if IS_PGBOUNCER else {
        "max_prepared_statements": 20})

    def client(i):
        with target.connect3(prepare_threshold=0) as c:
            c.prepared_max = 100  # psycopg itself never deallocates here
            for rep in range(3):
                for k in range(60):
                    v = c.execute("SELECT %s::int + " + str(k) + " + " + str(i * 1000),
                                  (rep,)).fetchone()[0]
                    assert v == rep + k + i * 1000, (i, rep, k, v)

    run_threads(5, client)


def test_failed_parse_then_same_name(target):
    """A named Parse that fails (syntax error, unknown table) creates nothing: the name can be
    prepared right after, and using it before errors with 26000."""

    def client(i):
        with target.connect3(prepare_threshold=None) as c:
            pc = c.pgconn
            for rep in range(5):
                name = b"drv_bad_%d" % rep
                code, _ = pq_error(pc.prepare(name, b"SELEC $1::int"))
                assert code == "42601", code
                code, _ = pq_error(pc.prepare(name, b"SELECT x FROM drv_no_such_table"))
                assert code == "42P01", code
                code, _ = pq_error(pc.exec_prepared(name, [b"1"]))
                assert code == "26000", code
                pq_ok(pc.prepare(name, b"SELECT $1::int - %d" % i))
                for k in range(5):
                    assert pq_value(pc.exec_prepared(name, [b"%d" % k])) == str(k - i)
                # preparing an existing name again is PostgreSQL's 42P05
                code, _ = pq_error(pc.prepare(name, b"SELECT 1"))
                assert code == "42P05", code
                assert pq_value(pc.exec_prepared(name, [b"10"])) == str(10 - i)

    run_threads(4, client)


def wire(kind, body=b""):
    return kind + struct.pack("!i", len(body) + 4) + body


def w_parse(name, sql):
    return wire(b"P", name + b"\0" + sql + b"\0" + struct.pack("!h", 0))


def w_bind(stmt, params):
    body = b"\0" + stmt + b"\0" + struct.pack("!hh", 0, len(params))
    for p in params:
        body += struct.pack("!i", len(p)) + p
    return wire(b"B", body + struct.pack("!h", 0))


def w_describe(kind, name):
    return wire(b"D", kind + name + b"\0")


def w_execute():
    return wire(b"E", b"\0" + struct.pack("!i", 0))


def w_close(kind, name):
    return wire(b"C", kind + name + b"\0")


W_SYNC, W_FLUSH = wire(b"S"), wire(b"H")


def read_msgs(r, count=None):
    """Messages up to ReadyForQuery (or exactly count messages): list of (type, body)."""
    out = []
    while count is None or len(out) < count:
        t, body = r.read_msg()
        out.append((t, body))
        if count is None and t == b"Z":
            break
    return out


def kinds(msgs):
    return b"".join(t for t, _ in msgs).decode()


def first_value(msgs):
    for t, body in msgs:
        if t == b"D":
            (ln,) = struct.unpack("!i", body[2:6])
            return body[6:6 + ln].decode()
    return None


def sqlstate(msgs):
    for t, body in msgs:
        if t == b"E":
            for part in body.split(b"\0"):
                if part[:1] == b"C":
                    return part[1:].decode()
    return None


def test_wire_close_describe_flush(target):
    """Raw protocol, 4 clients sharing statement names: Parse/Sync, Bind/Execute/Sync many times,
    Describe S, Close S (CloseComplete), use after Close (26000), Close of an unknown name (no
    error, like PostgreSQL), re-Parse with another text in the same batch as its Bind, and
    Parse/Bind/Describe/Execute/Flush answered before any Sync."""
    from pgmux_helpers import RawClient

    def client(i):
        r = RawClient(target.port)
        try:
            r.login(user=USER, password=PASSWORD, database=target.dbname)
            for rep in range(4):
                s = b"drv_w%d" % rep
                r.send(w_parse(s, b"SELECT $1::int + %d" % i) + W_SYNC)
                assert kinds(read_msgs(r)) == "1Z"
                for j in range(10):
                    r.send(w_bind(s, [b"%d" % j]) + w_execute() + W_SYNC)
                    m = read_msgs(r)
                    assert kinds(m) == "2DCZ" and first_value(m) == str(i + j), (i, rep, j, m)
                r.send(w_describe(b"S", s) + W_SYNC)
                m = read_msgs(r)
                assert kinds(m) == "tTZ", m
                assert m[0][1] == struct.pack("!hi", 1, 23), m[0]  # one int4 parameter
                r.send(w_close(b"S", s) + W_SYNC)
                assert kinds(read_msgs(r)) == "3Z"
                r.send(w_bind(s, [b"1"]) + w_execute() + W_SYNC)
                m = read_msgs(r)
                assert kinds(m) == "EZ" and sqlstate(m) == "26000", m
                r.send(w_close(b"S", b"drv_never_prepared") + W_SYNC)
                assert kinds(read_msgs(r)) == "3Z"
                # the name again, other text, Parse and Bind in one batch
                r.send(w_parse(s, b"SELECT $1::text || '-%d'" % i) + w_bind(s, [b"x"]) +
                       w_execute() + W_SYNC)
                m = read_msgs(r)
                assert kinds(m) == "12DCZ" and first_value(m) == "x-%d" % i, m
                # Flush: the answers come before Sync
                f = b"drv_f%d" % rep
                r.send(w_parse(f, b"SELECT $1::int * %d AS v" % (i + 1)) + w_bind(f, [b"3"]) +
                       w_describe(b"P", b"") + w_execute() + W_FLUSH)
                m = read_msgs(r, 5)
                assert kinds(m) == "12TDC" and first_value(m) == str(3 * (i + 1)), m
                r.send(W_SYNC)
                assert kinds(read_msgs(r)) == "Z"
                r.send(w_bind(f, [b"4"]) + w_execute() + W_SYNC)
                m = read_msgs(r)
                assert kinds(m) == "2DCZ" and first_value(m) == str(4 * (i + 1)), m
                r.send(w_close(b"S", s) + w_close(b"S", f) + W_SYNC)
                assert kinds(read_msgs(r)) == "33Z"
        finally:
            r.close()

    run_threads(4, client)


def test_wire_postgresjs_pattern(target):
    """postgres.js's way, on the wire, 6 clients: a new statement is sent as Parse + Describe +
    Flush (no Sync), and its Bind/Execute/Sync goes out together with the next statement's
    Parse/Describe/Flush; statements prepared earlier are Bind/Execute/Sync only."""
    from pgmux_helpers import RawClient

    def client(i):
        r = RawClient(target.port)
        try:
            r.login(user=USER, password=PASSWORD, database=target.dbname)
            names = [b"pjs%d_%d" % (i, k) for k in range(8)]
            texts = [b"SELECT $1::int * %d + %d AS v" % (k + 1, i) for k in range(8)]
            r.send(w_parse(names[0], texts[0]) + w_describe(b"S", names[0]) + W_FLUSH)
            assert kinds(read_msgs(r, 3)) == "1tT"
            for k in range(8):
                batch = w_bind(names[k], [b"%d" % k]) + w_execute() + W_SYNC
                if k + 1 < 8:
                    batch += (w_parse(names[k + 1], texts[k + 1]) +
                              w_describe(b"S", names[k + 1]) + W_FLUSH)
                r.send(batch)
                m = read_msgs(r)
                assert kinds(m) == "2DCZ" and first_value(m) == str(k * (k + 1) + i), (i, k, m)
                if k + 1 < 8:
                    assert kinds(read_msgs(r, 3)) == "1tT", (i, k)
            for rep in range(10):  # all prepared now: Bind/Execute/Sync, several per write
                batch = b"".join(w_bind(names[k], [b"%d" % rep]) + w_execute() + W_SYNC
                                 for k in range(8))
                r.send(batch)
                for k in range(8):
                    m = read_msgs(r)
                    assert kinds(m) == "2DCZ" and first_value(m) == str(rep * (k + 1) + i), \
                        (i, rep, k, m)
        finally:
            r.close()

    run_threads(6, client)


def test_wire_reprepare_inside_aborted_pipeline(pgmux_factory, pg):
    """One client, one server, max_prepared_statements=1: using s1 after s2 needs s1 prepared
    on the server again. When that happens after an error in the same pipeline, the server
    skips the pooler's own Parse too; the pooler must not count s1 as prepared there. Then
    the next Bind of s1 (after Sync) works, and so do s2 and s1 again."""
    from pgmux_helpers import RawClient

    t = make_target(pgmux_factory, pg, settings={"default_pool_size": 1} if IS_PGBOUNCER else {
        "default_pool_size": 1, "max_prepared_statements": 1})
    r = RawClient(t.port)
    try:
        r.login(user=USER, password=PASSWORD, database=t.dbname)
        r.send(w_parse(b"s1", b"SELECT 100 / $1::int") + w_parse(b"s2", b"SELECT $1::int + 1") +
               W_SYNC)
        assert kinds(read_msgs(r)) == "11Z"
        for rep in range(3):
            # s1 with 0 fails (at Bind: the custom plan folds 100 / 0), the rest is skipped
            r.send(w_bind(b"s2", [b"1"]) + w_execute() + w_bind(b"s1", [b"0"]) + w_execute() +
                   w_bind(b"s2", [b"5"]) + w_execute() + w_bind(b"s1", [b"4"]) + w_execute() +
                   W_SYNC)
            m = read_msgs(r)
            assert kinds(m) == "2DCEZ" and sqlstate(m) == "22012", (rep, m)
            r.send(w_bind(b"s2", [b"7"]) + w_execute() + w_bind(b"s1", [b"0"]) + w_execute() +
                   w_bind(b"s1", [b"5"]) + w_execute() + W_SYNC)
            m = read_msgs(r)
            assert kinds(m) == "2DCEZ" and sqlstate(m) == "22012", (rep, m)
            r.send(w_bind(b"s1", [b"4"]) + w_execute() + W_SYNC)
            m = read_msgs(r)
            assert kinds(m) == "2DCZ" and first_value(m) == "25", (rep, m)
            r.send(w_bind(b"s2", [b"4"]) + w_execute() + W_SYNC)
            m = read_msgs(r)
            assert kinds(m) == "2DCZ" and first_value(m) == "5", (rep, m)
    finally:
        r.close()


# ---------------------------------------------------------------------------------------------
# Server connections replaced under idle clients


def pooler_backends(pg, dbname=DBNAME):
    return {r[0] for r in pg.sql("SELECT pid FROM pg_stat_activity WHERE datname = %s AND "
                                 "usename = %s AND pid <> pg_backend_pid()", [dbname, USER])}


@transaction_only
def test_reprepare_after_backends_terminated(target, pg):
    clients = [target.connect3(prepare_threshold=0) for _ in range(6)]
    try:
        def use(i, rounds, pids):
            c = clients[i]
            for j in range(rounds):
                row = c.execute("SELECT %s::int + " + str(i * 1000) + ", pg_backend_pid()",
                                (j,)).fetchone()
                assert row[0] == i * 1000 + j, (i, j, row)
                pids.add(row[1])
                assert c.execute("SELECT %s::text || 'k'", ("s%d" % j,)).fetchone() == \
                    ("s%dk" % j,)

        before = set()
        run_threads(6, lambda i: use(i, 20, before))
        servers = pooler_backends(pg)
        assert servers and before <= servers, (before, servers)
        for pid in servers:
            pg.terminate(pid)
        wait_until(lambda: not (pooler_backends(pg) & servers), 10, msg="servers gone")
        time.sleep(1.0)  # let the pooler see the closed connections
        for round_ in range(2):
            after = set()
            run_threads(6, lambda i: use(i, 20, after))
            assert not (after & servers), "queries ran on terminated backends %s" % (
                after & servers)
    finally:
        for c in clients:
            c.close()


@transaction_only
def test_reprepare_after_server_lifetime(pgmux_factory, pg):
    t = make_target(pgmux_factory, pg, settings={"server_lifetime": 1})
    duration = 3.5

    def client(i):
        pids = set()
        with t.connect3(prepare_threshold=0) as c:
            end = time.monotonic() + duration
            j = 0
            while time.monotonic() < end:
                row = c.execute("SELECT %s::int + " + str(i * 1000) + ", pg_backend_pid()",
                                (j,)).fetchone()
                assert row[0] == i * 1000 + j, (i, j, row)
                pids.add(row[1])
                j += 1
                time.sleep(0.02)
        return pids

    pid_sets = run_threads(6, client)
    used = set().union(*pid_sets)
    assert len(used) > POOL_SIZE, "server_lifetime=1 did not replace servers (%d pids)" % len(
        used)
