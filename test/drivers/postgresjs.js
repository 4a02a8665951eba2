// postgres.js (`postgres`) through pgmux with its defaults (prepare: true, max: 10 connections),
// used by test/test_drivers.py. Connection settings come from PGHOST, PGPORT, PGDATABASE,
// PGUSER and PGPASSWORD. Prints one JSON object on stdout; exits 1 on any driver error.
//
// BATCHES times, 200 concurrent parameterized queries of four shapes go through the 10
// connections. postgres.js names its statements per connection (random prefix + counter), sends
// Parse/Describe/Flush the first time, and Bind/Execute/Sync afterwards.
//
// postgres.js quietly retries a query once when the server says its prepared statement does not
// exist (routine FetchPreparedStatement); the debug hook runs once per attempt, so
// `attempts - queries` counts those retries, and the test wants none.
'use strict';

const postgres = require('postgres');

const BATCHES = parseInt(process.env.BATCHES || '3', 10);
const CONCURRENT = 200;

async function main() {
  const out = { queries: 0, attempts: 0, mismatches: 0, examples: [], errors: [] };
  // A pooler that loses track of a statement can leave a query hanging: give up after 40 s.
  setTimeout(() => {
    out.errors.push('timed out after 40 s with ' + out.queries + ' queries done');
    process.stdout.write(JSON.stringify(out) + '\n');
    process.exit(1);
  }, 40000).unref();
  const sql = postgres({
    host: process.env.PGHOST,
    port: parseInt(process.env.PGPORT, 10),
    database: process.env.PGDATABASE,
    username: process.env.PGUSER,
    password: process.env.PGPASSWORD,
    connect_timeout: 20,
    prepare: process.env.PGJS_PREPARE !== 'false', // 'false' only for diagnosing a failure
    max: parseInt(process.env.PGJS_MAX || '10', 10),
    onnotice: () => {},
    debug: (conn, text) => { if (text.includes('pgmux_drv')) out.attempts += 1; },
  });
  const check = (ok, what) => {
    out.queries += 1;
    if (!ok) {
      out.mismatches += 1;
      if (out.examples.length < 10) {
        // a snapshot now: what the driver handed over, with its column metadata
        const r = what.r;
        out.examples.push({ n: what.n, rows: JSON.stringify(r), length: r && r.length,
          command: r && r.command, columns: r && r.columns && r.columns.map((c) => c.name) });
      }
    }
  };
  let rc = 0;
  try {
    const pids = new Set();
    for (let b = 0; b < BATCHES; b++) {
      const jobs = [];
      for (let i = 0; i < CONCURRENT; i++) {
        const n = b * 1000 + i;
        switch (i % 4) {
          case 0:
            // the short sleep keeps a server busy, so that connections overlap and several
            // servers get used even when node runs slowly (a loaded machine)
            jobs.push(sql`select /* pgmux_drv */ ${n}::int + 1 as v, pg_backend_pid() as pid, pg_sleep(0.005) as z`
              .then((r) => { if (r[0]) pids.add(r[0].pid); check(r.length === 1 && r[0].v === n + 1, { n, r }); }));
            break;
          case 1:
            jobs.push(sql`select /* pgmux_drv */ ${'s' + n}::text || ${'!'}::text as s`
              .then((r) => check(r.length === 1 && r[0].s === 's' + n + '!', { n, r })));
            break;
          case 2:
            jobs.push(sql`select /* pgmux_drv */ g::int from generate_series(1, ${n % 7 + 1}::int) g`
              .then((r) => check(r.length === n % 7 + 1 && r[r.length - 1].g === n % 7 + 1, { n, r })));
            break;
          default:
            jobs.push(sql`select /* pgmux_drv */ ${n}::bigint * ${3}::int as v, ${n % 2 === 0}::bool as even`
              .then((r) => check(r.length === 1 && String(r[0].v) === String(n * 3) &&
                                 r[0].even === (n % 2 === 0), { n, r })));
        }
      }
      await Promise.all(jobs);
    }
    out.backend_pids = pids.size;
  } catch (e) {
    out.errors.push(String(e && (e.stack || e.message) || e) +
      (e && e.code ? ' [SQLSTATE ' + e.code + ']' : ''));
    rc = 1;
  }
  try {
    await sql.end({ timeout: 5 });
  } catch (e) {
    out.errors.push('end: ' + e.message);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(rc);
}

main();
