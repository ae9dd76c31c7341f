import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { Session, sessionMigrations } from '../../src/index.js';
import { endPool, POSTGRES_DIRECT, type OpenDatabase } from '../support/databases.js';
import { describeEachWhere } from '../support/requirements.js';
import { buildPackageIfStale } from '../support/build-package.js';
import { sleep } from './load.js';

/**
 * Case 7 of issue 7, many instances: three app processes (the built package, as a
 * deploy runs it: test/fixtures/purge-instance-app.mjs) on one database, each with
 * the purge cron every second, for 10 s, while expired rows keep arriving. Every
 * expired row is deleted once: the counts all runs log add up to exactly the rows
 * that disappeared, no live row is touched, every run logs its count, nothing errs.
 */
const INSTANCES = 3;
const RUN_MS = 10_000;
const BATCH_SIZE = 1000;
const EXPIRED_AT_START = 20_000;
const FED_EVERY_MS = 200;
const FED_PER_TICK = 100;
const LIVE_ROWS = 500;

const ROOT = resolve(import.meta.dirname, '../..');
const FIXTURE = resolve(ROOT, 'test/fixtures/purge-instance-app.mjs');

interface LogLine {
  instance: string;
  at: number;
  level: string;
  context?: string;
  message: string;
}

/** Runs one instance to completion; resolves with its exit code and log lines. */
function runInstance(
  instance: number,
  databaseUrl: string,
): Promise<{ code: number | null; lines: LogLine[]; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [FIXTURE], {
      cwd: ROOT,
      env: {
        ...process.env,
        NODE_OPTIONS: '',
        DATABASE_URL: databaseUrl,
        INSTANCE: String(instance),
        RUN_MS: String(RUN_MS),
        BATCH_SIZE: String(BATCH_SIZE),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('exit', (code) =>
      done({
        code,
        lines: stdout
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => JSON.parse(line) as LogLine),
        stderr,
      }),
    );
  });
}

describeEachWhere(POSTGRES_DIRECT, 'postgres', 'three app processes purging one database on %s', (_label, database) => {
  let db: OpenDatabase;
  let admin: pg.Pool;

  beforeAll(async () => {
    // The instances run the built package: build it when dist/ is missing or older than src/.
    buildPackageIfStale();
    db = await database.open();
    // Migrated once, before the replicas start, as a deploy does.
    const migrator = new DataSource({
      type: 'postgres',
      url: db.url!,
      entities: [Session],
      migrations: sessionMigrations,
    });
    await migrator.initialize();
    await migrator.runMigrations();
    await migrator.destroy();
    admin = new pg.Pool({ connectionString: db.url!, max: 2 });
  }, 120_000);
  afterAll(async () => {
    await endPool(admin);
    await db?.dispose();
  });

  it(
    `${INSTANCES} processes, purge every second for ${RUN_MS / 1000} s: each expired row deleted once, every run logs its count, no errors`,
    async () => {
      const insertExpired = (prefix: string, count: number) =>
        admin.query(
          `INSERT INTO sessions (id, "user", created, expires)
           SELECT $1 || g, 'expired', now() - interval '2 hours', now() - interval '1 second' - g * interval '1 ms'
           FROM generate_series(1, $2) g`,
          [prefix, count],
        );
      await insertExpired('expired-start-', EXPIRED_AT_START);
      await admin.query(
        `INSERT INTO sessions (id, "user", created, expires)
         SELECT 'live-' || g, 'live-' || g, now(), now() + interval '1 hour' FROM generate_series(1, $1) g`,
        [LIVE_ROWS],
      );

      const runs = Array.from({ length: INSTANCES }, (_, i) => runInstance(i + 1, db.url!));
      let fed = EXPIRED_AT_START;
      const feedUntil = performance.now() + RUN_MS - 1000;
      for (let tick = 0; performance.now() < feedUntil; tick++) {
        await insertExpired(`expired-fed-${tick}-`, FED_PER_TICK);
        fed += FED_PER_TICK;
        await sleep(FED_EVERY_MS);
      }
      const results = await Promise.all(runs);

      const remainingExpired = Number(
        (await admin.query(`SELECT count(*)::int AS n FROM sessions WHERE "user" = 'expired'`)).rows[0].n,
      );
      const live = Number(
        (await admin.query(`SELECT count(*)::int AS n FROM sessions WHERE "user" <> 'expired'`)).rows[0].n,
      );
      const deletedRows = fed - remainingExpired;

      const all = results.flatMap((result) => result.lines);
      const purgeLines = all.filter((line) => line.context === 'SessionPurgeService');
      const runLines = purgeLines.filter((line) =>
        /^Purged \d+ expired sessions? in \d+ ms \(\d+ batch(es)?\)/.test(line.message),
      );
      const loggedDeleted = runLines.reduce((sum, line) => sum + Number(/^Purged (\d+)/.exec(line.message)![1]), 0);
      const perInstance = results.map((result) =>
        result.lines
          .filter((line) => line.context === 'SessionPurgeService' && line.message.startsWith('Purged '))
          .map((line) => Number(/^Purged (\d+)/.exec(line.message)![1])),
      );
      const problems = all.filter((line) => ['error', 'fatal', 'warn'].includes(line.level));

      process.stderr.write(
        `[hardening:instances] ${INSTANCES} processes for ${RUN_MS / 1000} s: ${fed} expired rows (${EXPIRED_AT_START} at start, ` +
          `${fed - EXPIRED_AT_START} fed during), ${deletedRows} deleted, the runs' logs add up to ${loggedDeleted}; ` +
          `${runLines.length} runs logged (${perInstance.map((counts, i) => `#${i + 1}: ${counts.length} runs, ${counts.reduce((a, b) => a + b, 0)} rows`).join('; ')}); ` +
          `${live}/${LIVE_ROWS} live rows kept, ${problems.length} errors or warnings\n`,
      );
      expect(results.map((result) => ({ code: result.code, stderr: result.stderr }))).toEqual(
        results.map(() => ({ code: 0, stderr: '' })),
      );
      expect(problems).toEqual([]);
      // Each expired row deleted once: what the runs say they deleted is exactly what disappeared.
      expect(loggedDeleted).toBe(deletedRows);
      // The backlog and (nearly) all of the feed went; the last second's feed may still wait for a run.
      expect(deletedRows).toBeGreaterThanOrEqual(fed - 2 * FED_PER_TICK * (1000 / FED_EVERY_MS));
      expect(live).toBe(LIVE_ROWS);
      // Every instance ran about every second, and every run said how many it deleted.
      for (const counts of perInstance) expect(counts.length).toBeGreaterThanOrEqual(RUN_MS / 1000 - 3);
      expect(purgeLines.filter((line) => line.message.startsWith('Purged ')).length).toBe(runLines.length);
    },
    RUN_MS + 60_000,
  );
});
