/**
 * `npm run bench:scaling`: the write-side figures behind docs/scaling.md, on a throwaway
 * primary with fsync on (commits cost what they cost on a real server): login INSERTs per
 * second; `lastSeen` UPDATEs per second with the cache-trigger's NOTIFY and without it (the
 * trigger disabled), alone and with 10 listeners connected; and what one mass revocation (one
 * user's 1,000 and 1,001 sessions) sends. Load by pgbench (PostgreSQL's own), custom scripts.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { Session, sessionMigrations } from '../src/index.js';
import { startThrowawayPostgres } from '../test/hardening/throwaway-postgres.js';
import { postgresBinDir } from '../test/support/requirements.js';
import { COMMON_USAGE, count, parseFlags } from './options.js';
import { describeEnvironment, environmentLine, formatNumber, table } from './report.js';

const USAGE = `npm run bench:scaling -- [flags]
  --rows N            sessions seeded (default 1000000; smoke 5000)
  --seconds S         seconds per pgbench run (default 10; smoke 1)
  --clients N         pgbench clients (default 8)
${COMMON_USAGE}
  (only --smoke of the common flags applies: the bench starts its own primary)`;

const { settings, values } = parseFlags(
  process.argv.slice(2),
  { rows: { type: 'string' }, seconds: { type: 'string' }, clients: { type: 'string' } },
  USAGE,
);
const rows = count(values.rows, settings.smoke ? 5000 : 1_000_000, 'rows');
const seconds = count(values.seconds, settings.smoke ? 1 : 10, 'seconds');
const clients = count(values.clients, 8, 'clients');
const run = promisify(execFile);
const log = (line: string) => console.log(line);
const bin = postgresBinDir();
if (bin === null) throw new Error('bench:scaling needs the PostgreSQL server binaries (initdb, pgbench)');

const USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36';
const SCRIPTS = {
  login: `\\set n random(1, 1000000000)
INSERT INTO sessions (id, "user", created, expires, authenticated_at, user_agent, ip, last_seen)
VALUES (encode(sha256(convert_to(random()::text || :n, 'UTF8')), 'hex'), 'login-' || :n, now(), now() + interval '100 days', now(), '${USER_AGENT}', '203.0.113.7', now());`,
  touch: `\\set n random(1, :rows)
UPDATE sessions SET last_seen = now() WHERE id = encode(sha256(convert_to('s' || :n, 'UTF8')), 'hex') AND expires > now();`,
  lookup: `\\set n random(1, :rows)
SELECT "user", expires FROM sessions WHERE id = encode(sha256(convert_to('s' || :n, 'UTF8')), 'hex');`,
};

const primary = await startThrowawayPostgres({ durable: true });
const dir = mkdtempSync(join(tmpdir(), 'nts-bench-scaling-'));
const pool = new pg.Pool({ connectionString: primary.url, max: 2 });
const listeners: pg.Client[] = [];
try {
  const migrator = new DataSource({
    type: 'postgres',
    url: primary.url,
    entities: [Session],
    migrations: sessionMigrations,
  });
  await migrator.initialize();
  await migrator.runMigrations();
  await migrator.destroy();
  const environment = await describeEnvironment(
    (await pool.query<{ server_version: string }>('SHOW server_version')).rows[0].server_version,
  );
  log(`machine: ${environmentLine(environment)}`);
  const started = performance.now();
  await pool.query(
    `INSERT INTO sessions (id, "user", created, expires, authenticated_at, user_agent, ip, last_seen)
     SELECT encode(sha256(convert_to('s' || g, 'UTF8')), 'hex'), 'user-' || (g / 3), now(), now() + interval '100 days',
            now(), $2, '203.0.113.' || (g % 250), now() - interval '1 hour'
     FROM generate_series(1, $1::int) AS g`,
    [rows, USER_AGENT],
  );
  await pool.query('VACUUM ANALYZE sessions');
  const size = (
    await pool.query<{ table: string; total: string }>(
      `SELECT pg_relation_size('sessions') AS table, pg_total_relation_size('sessions') AS total`,
    )
  ).rows[0];
  log(
    `seeded ${rows.toLocaleString('en-US')} sessions in ${((performance.now() - started) / 1000).toFixed(1)} s: ` +
      `table ${mb(size.table)} MB, with its indexes ${mb(size.total)} MB (${formatNumber(Number(size.total) / rows)} bytes per session)`,
  );
  for (const [name, text] of Object.entries(SCRIPTS)) writeFileSync(join(dir, `${name}.sql`), text);
  const results: [string, string][] = [];
  const bench = async (label: string, script: keyof typeof SCRIPTS) => {
    await pool.query('CHECKPOINT');
    const { stdout } = await run(join(bin, 'pgbench'), [
      ...['-n', '-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres'],
      ...[
        '-c',
        String(clients),
        '-j',
        '2',
        '-T',
        String(seconds),
        '-D',
        `rows=${rows}`,
        '-f',
        join(dir, `${script}.sql`),
      ],
      'postgres',
    ]);
    const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1] ?? NaN);
    log(`  ${label}: ${formatNumber(tps)} per second`);
    results.push([label, formatNumber(tps)]);
    return tps;
  };
  await bench('lookups (primary-key SELECT)', 'lookup');
  await bench('logins (INSERT, no NOTIFY)', 'login');
  await bench('lastSeen UPDATEs, with the NOTIFY trigger', 'touch');
  await pool.query('ALTER TABLE sessions DISABLE TRIGGER nts_session_cache_update');
  await bench('lastSeen UPDATEs, trigger disabled', 'touch');
  await pool.query('ALTER TABLE sessions ENABLE TRIGGER nts_session_cache_update');
  const channel = (await pool.query<{ c: string }>(`SELECT 'nts_session_cache_' || 'sessions'::regclass::oid AS c`))
    .rows[0].c;
  const heard: number[] = [];
  for (let i = 0; i < 10; i++) {
    const client = new pg.Client({ connectionString: primary.url });
    await client.connect();
    heard.push(0);
    client.on('notification', () => heard[i]++);
    await client.query(`LISTEN ${channel}`);
    listeners.push(client);
  }
  const touches = await bench('lastSeen UPDATEs, with the NOTIFY trigger, 10 listeners', 'touch');
  await new Promise((resolve) => setTimeout(resolve, 500));
  log(
    `    each listener heard ${heard.map((n) => formatNumber(n)).join(', ')} (${formatNumber(touches * seconds)} updates)`,
  );

  // Mass revocation: one statement over 1,000 live rows sends ids in chunks; over 1,000, one '*'.
  for (const sessions of [1000, 1001]) {
    const user = `mass-${sessions}`;
    await pool.query(
      `INSERT INTO sessions (id, "user", created, expires) SELECT encode(sha256(convert_to($1 || g, 'UTF8')), 'hex'), $1, now(), now() + interval '1 day' FROM generate_series(1, $2::int) AS g`,
      [user, sessions],
    );
    const payloads: string[] = [];
    listeners[0].removeAllListeners('notification');
    listeners[0].on('notification', (message) => payloads.push(message.payload ?? ''));
    const before = performance.now();
    await pool.query('DELETE FROM sessions WHERE "user" = $1', [user]);
    const took = performance.now() - before;
    await new Promise((resolve) => setTimeout(resolve, 300));
    const line =
      `deleteSessionsByUserId over ${sessions} sessions: ${took.toFixed(1)} ms, ${payloads.length} NOTIFY ` +
      `payload(s), ${formatNumber(payloads.reduce((sum, p) => sum + p.length, 0))} bytes${payloads.includes('*') ? " ('*': every instance flushes)" : ''}`;
    log(`  ${line}`);
    results.push([line, '']);
  }
  log('');
  log(table([`pgbench, ${clients} clients, ${seconds} s, fsync on`, 'per second'], results));
} finally {
  await Promise.all(listeners.map((client) => client.end().catch(() => undefined)));
  await pool.end();
  await primary.destroy();
  rmSync(dir, { recursive: true, force: true });
}

function mb(bytes: string): string {
  return formatNumber(Number(bytes) / 1048576);
}
