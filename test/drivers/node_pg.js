// node-postgres (`pg`) through pgmux, used by test/test_drivers.py.
//
// Connection settings come from the libpq variables PGHOST, PGPORT, PGDATABASE, PGUSER and
// PGPASSWORD (node-postgres reads them itself). Prints one JSON object on stdout; the Python
// test checks the numbers in it. Exits 1 on any driver error.
//
// Phase "shared": a pg.Pool of 20 clients, all checked out at once, each running the named
// query q1 (same name, same text on every client) ROUNDS times. node-postgres sends Parse for
// q1 once per client connection and only Bind/Execute afterwards, so in transaction mode a
// later Bind usually lands on a server connection that never saw this client's Parse.
// Then 400 concurrent pool.query() calls with q1 and with q2.
//
// Phase "clash": 10 separate pg.Client connections that all name their statement "qx" but give
// it a different text (a per-client constant), so a pooler that shares server-side names between
// clients returns another client's answers.
'use strict';

const pg = require('pg');

const ROUNDS = parseInt(process.env.ROUNDS || '30', 10);
const POOL_MAX = 20;

function mismatch(out, what) {
  out.mismatches += 1;
  if (out.examples.length < 10) out.examples.push(what);
}

async function shared(out) {
  const pool = new pg.Pool({ max: POOL_MAX, connectionTimeoutMillis: 20000 });
  pool.on('error', (e) => { out.errors.push('idle client: ' + e.message); });
  try {
    const clients = await Promise.all(Array.from({ length: POOL_MAX }, () => pool.connect()));
    out.pool_total = pool.totalCount;
    const pids = new Set();
    // allSettled: every client is released (or destroyed after an error) before pool.end()
    const settled = await Promise.allSettled(clients.map(async (c, ci) => {
      let failed;
      try {
        for (let j = 0; j < ROUNDS; j++) {
          const a = ci * 1000 + j;
          const r = await c.query({
            name: 'q1',
            text: 'SELECT $1::int * 2 AS v, $2::text AS s, pg_backend_pid() AS pid',
            values: [a, 'c' + ci + 'r' + j],
          });
          out.queries += 1;
          if (r.rows.length !== 1 || r.rows[0].v !== a * 2 || r.rows[0].s !== 'c' + ci + 'r' + j) {
            mismatch(out, { client: ci, round: j, got: r.rows });
          }
          pids.add(r.rows[0].pid);
        }
      } catch (e) {
        failed = e;
        throw e;
      } finally {
        c.release(failed);
      }
    }));
    out.backend_pids = pids.size;
    const rejected = settled.find((s) => s.status === 'rejected');
    if (rejected) throw rejected.reason;

    // pool.query: any client, any order; two statement names on the same clients.
    const jobs = [];
    for (let i = 0; i < 400; i++) {
      if (i % 2 === 0) {
        jobs.push(pool.query({
          name: 'q1',
          text: 'SELECT $1::int * 2 AS v, $2::text AS s, pg_backend_pid() AS pid',
          values: [i, 'p' + i],
        }).then((r) => {
          out.queries += 1;
          if (r.rows.length !== 1 || r.rows[0].v !== i * 2 || r.rows[0].s !== 'p' + i) {
            mismatch(out, { pool_query: i, got: r.rows });
          }
        }));
      } else {
        jobs.push(pool.query({
          name: 'q2',
          text: 'SELECT count(*)::int AS n FROM generate_series(1, $1::int)',
          values: [i],
        }).then((r) => {
          out.queries += 1;
          if (r.rows.length !== 1 || r.rows[0].n !== i) mismatch(out, { pool_query: i, got: r.rows });
        }));
      }
    }
    const done = await Promise.allSettled(jobs);
    const bad = done.find((s) => s.status === 'rejected');
    if (bad) throw bad.reason;
  } finally {
    await pool.end();
  }
}

async function clash(out) {
  const clients = [];
  try {
    for (let ci = 0; ci < 10; ci++) {
      const c = new pg.Client({ connectionTimeoutMillis: 20000 });
      await c.connect();
      clients.push(c);
    }
    const settled = await Promise.allSettled(clients.map(async (c, ci) => {
      for (let j = 0; j < ROUNDS; j++) {
        const r = await c.query({
          name: 'qx',
          text: 'SELECT $1::int + ' + (ci * 100000) + ' AS v',
          values: [j],
        });
        out.queries += 1;
        if (r.rows.length !== 1 || r.rows[0].v !== ci * 100000 + j) {
          mismatch(out, { clash_client: ci, round: j, got: r.rows });
        }
      }
    }));
    const rejected = settled.find((s) => s.status === 'rejected');
    if (rejected) throw rejected.reason;
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  }
}

async function main() {
  const out = { queries: 0, mismatches: 0, examples: [], errors: [] };
  let rc = 0;
  // A pooler that loses track of a statement can leave a query hanging: give up after 40 s.
  setTimeout(() => {
    out.errors.push('timed out after 40 s with ' + out.queries + ' queries done');
    process.stdout.write(JSON.stringify(out) + '\n');
    process.exit(1);
  }, 40000).unref();
  try {
    await shared(out);
    await clash(out);
  } catch (e) {
    out.errors.push(String(e && (e.stack || e.message) || e) +
      (e && e.code ? ' [SQLSTATE ' + e.code + ']' : ''));
    rc = 1;
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(rc);
}

main();
