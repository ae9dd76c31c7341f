import pg from 'pg';
import { bootHttpApp, CapturingLogger, HTTP_PLATFORMS, type HttpApp } from '../support/http-app.js';
import { POSTGRES_DIRECT, type OpenDatabase } from '../support/databases.js';
import { describeWhere, describeEachWhere, postgresBinDir } from '../support/requirements.js';
import { type Sample, sleep, startLoad, statusCounts } from './load.js';
import { startThrowawayPostgres, type ThrowawayPostgres } from './throwaway-postgres.js';

/**
 * Case 3 of issue 7, database outage: guarded requests under steady load while the
 * database goes away, once by killing its connections (`pg_terminate_backend`, new
 * ones refused meanwhile) and once by stopping the server outright (a crash,
 * `pg_ctl stop -m immediate`) and starting it again. During the outage every answer
 * is 503, never 200 and never 401; the same app, never restarted, answers 200 again
 * within 5 s of the database being back; no session is lost. (An unhandled rejection
 * anywhere in the process would fail the test: jest 30 reports it against the running test.)
 *
 * The stop/start runs on a throwaway cluster of its own: the server at DATABASE_URL
 * serves every other suite and must never stop.
 */
const CLIENTS = 8;
const SESSIONS = 20;
const PAUSE_MS = 20;
const OUTAGE_MS = 1500;
const AFTER_MS = 4000;
const RECOVERY_LIMIT_MS = 5000;
const KILLING_MS = 2000;

/** Pool settings a production app should have too: fail fast instead of queueing on a dead server. */
const POOL = { extra: { connectionTimeoutMillis: 1000, query_timeout: 2000, max: 10 } };

interface Outage {
  /** Kill the database for the app; resolves when it is certainly gone. */
  down(): Promise<void>;
  /** Bring it back; resolves when it accepts connections again. */
  up(): Promise<void>;
}

/** What one outage run measured. */
interface OutageFigures {
  requests: number;
  statuses: Record<number, number>;
  /** Requests sent after the outage began and answered before the database started coming back. */
  duringOutage: Sample[];
  /** From the database being back to the end of the last failed request (0: the first one after was a 200). */
  recoveryMs: number;
  /** How long bringing the database back took (`up()`). */
  restartMs: number;
  /** From the start of `up()` to the first 200. */
  firstSuccessMs: number;
  afterRecovery: Sample[];
}

async function runOutage(http: HttpApp, cookies: string[], outage: Outage): Promise<OutageFigures> {
  const url = `${await http.app.getUrl()}/me`.replace('[::1]', '127.0.0.1');
  const load = startLoad(url, cookies, PAUSE_MS);
  try {
    await sleep(500);
    await outage.down();
    const wentDown = performance.now();
    await sleep(OUTAGE_MS);
    // The server may accept connections a little before `up()` knows it (pg_ctl polls):
    // the outage window closes when the restart begins, recovery counts from when it is done.
    const restarting = performance.now();
    await outage.up();
    const cameBack = performance.now();
    await sleep(AFTER_MS);
    const samples = await load.stop();
    const failedAfter = samples.filter((sample) => sample.started >= cameBack && sample.status !== 200);
    const recoveredAt = Math.max(cameBack, ...failedAfter.map((sample) => sample.ended));
    return {
      requests: samples.length,
      statuses: statusCounts(samples),
      duringOutage: samples.filter((sample) => sample.started >= wentDown && sample.ended <= restarting),
      recoveryMs: Math.round(recoveredAt - cameBack),
      restartMs: Math.round(cameBack - restarting),
      firstSuccessMs: Math.round(
        Math.min(...samples.filter((s) => s.started >= restarting && s.status === 200).map((s) => s.ended)) -
          restarting,
      ),
      afterRecovery: samples.filter((sample) => sample.started > recoveredAt),
    };
  } finally {
    await load.stop();
  }
}

/** The checks both kinds of outage share. */
async function expectFailedClosedAndRecovered(
  http: HttpApp,
  cookies: string[],
  figures: OutageFigures,
  logger: CapturingLogger,
): Promise<void> {
  // Only 200 (before and after) and 503 (during): never a 401, a 500 or a dropped connection.
  expect(Object.keys(figures.statuses).sort()).toEqual(['200', '503']);
  expect(figures.duringOutage.length).toBeGreaterThan(CLIENTS);
  expect(statusCounts(figures.duringOutage)).toEqual({ 503: figures.duringOutage.length });
  expect(figures.recoveryMs).toBeLessThanOrEqual(RECOVERY_LIMIT_MS);
  expect(figures.afterRecovery.length).toBeGreaterThan(CLIENTS);
  expect(statusCounts(figures.afterRecovery)).toEqual({ 200: figures.afterRecovery.length });
  // No session lost: every one still opens, and all rows are there.
  const url = `${await http.app.getUrl()}/me`.replace('[::1]', '127.0.0.1');
  const statuses = await Promise.all(
    cookies.map((cookie) => fetch(url, { headers: { cookie } }).then((r) => r.status)),
  );
  expect(statuses).toEqual(cookies.map(() => 200));
  expect(await http.dataSource.query('SELECT count(*)::int AS n FROM sessions')).toEqual([{ n: SESSIONS }]);
  // The outage was logged as such (503 with the cause), never with a cookie value.
  expect(logger.text()).toContain('Session lookup failed, answering 503');
  for (const cookie of cookies) expect(logger.text()).not.toContain(cookie.slice('session_id='.length));
}

function report(kind: string, platform: string, figures: OutageFigures): void {
  process.stderr.write(
    `[hardening:outage] ${platform}, ${kind}: ${figures.requests} requests ${JSON.stringify(figures.statuses)}, ` +
      `${figures.duringOutage.length} during the outage all 503; bringing it back took ${figures.restartMs} ms, ` +
      `the first 200 came ${figures.firstSuccessMs} ms after that began, ` +
      `the last failure ended ${figures.recoveryMs} ms after the database was back; ` +
      `${figures.afterRecovery.length} requests after that all 200\n`,
  );
}

async function issueSessions(http: HttpApp): Promise<string[]> {
  const cookies: string[] = [];
  for (let i = 0; i < SESSIONS; i++)
    cookies.push(`session_id=${await http.sessions.createSessionForUser(`user-${i}`)}`);
  return cookies;
}

// PostgreSQL only: PGlite lives in the test process and cannot go down.
describe.each(HTTP_PLATFORMS)('database outage on %s', (_platformLabel, platform) => {
  describeEachWhere(
    POSTGRES_DIRECT,
    'postgres',
    'with %s connections killed by pg_terminate_backend',
    (_databaseLabel, database) => {
      let db: OpenDatabase;
      let http: HttpApp;
      let admin: pg.Client;
      const logger = new CapturingLogger();

      beforeAll(async () => {
        db = await database.open();
        http = await bootHttpApp(platform, {
          database: db.options,
          typeorm: POOL,
          session: { globalGuard: true },
          logger,
        });
        await http.app.listen(0, '127.0.0.1');
        // An administrator on another database, so it is not among the killed.
        admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
        await admin.connect();
      });
      afterAll(async () => {
        await admin?.end();
        await http?.close();
        await db?.dispose();
      });

      it('answers 503 while the connections are gone, 200 again within 5 s of them being allowed back, loses nothing', async () => {
        const cookies = await issueSessions(http);
        const name = new URL(db.url!).pathname.slice(1);
        let killed = 0;
        const figures = await runOutage(http, cookies, {
          async down() {
            // Refuse new connections first, so the pool cannot quietly reconnect: a real outage.
            await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`);
            const rows = await admin.query(
              'SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
              [name],
            );
            killed = rows.rows.filter((row) => row.killed).length;
          },
          async up() {
            await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`);
          },
        });
        report(`${killed} connections killed by pg_terminate_backend`, platform, figures);
        expect(killed).toBeGreaterThan(0);
        await expectFailedClosedAndRecovered(http, cookies, figures, logger);
      });

      it('answers only 200 or 503 while its connections are killed over and over (reconnects allowed), then 200 at once', async () => {
        await http.dataSource.query('DELETE FROM sessions');
        const cookies = await issueSessions(http);
        const name = new URL(db.url!).pathname.slice(1);
        const url = `${await http.app.getUrl()}/me`.replace('[::1]', '127.0.0.1');
        const load = startLoad(url, cookies, PAUSE_MS);
        await sleep(300);
        let killed = 0;
        const killUntil = performance.now() + KILLING_MS;
        while (performance.now() < killUntil) {
          const rows = await admin.query(
            'SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
            [name],
          );
          killed += rows.rows.filter((row) => row.killed).length;
          await sleep(100);
        }
        const stoppedKilling = performance.now();
        await sleep(2000);
        const samples = await load.stop();
        // A request on a connection killed under it gets 503; the pool replaces the connection for the next one.
        const after = samples.filter((sample) => sample.started >= stoppedKilling + 100);
        process.stderr.write(
          `[hardening:outage] ${platform}, ${killed} connections killed by pg_terminate_backend every 100 ms for ${KILLING_MS} ms ` +
            `(reconnects allowed): ${samples.length} requests ${JSON.stringify(statusCounts(samples))}, ` +
            `${after.length} after the killing stopped all 200\n`,
        );
        expect(killed).toBeGreaterThan(KILLING_MS / 100);
        expect(Object.keys(statusCounts(samples)).filter((status) => status !== '200' && status !== '503')).toEqual([]);
        expect(after.length).toBeGreaterThan(CLIENTS);
        expect(statusCounts(after)).toEqual({ 200: after.length });
        expect(await http.dataSource.query('SELECT count(*)::int AS n FROM sessions')).toEqual([{ n: SESSIONS }]);
      });
    },
  );

  // Needs only the server binaries: the cluster is its own, not DATABASE_URL's.
  describeWhere(
    postgresBinDir() !== null,
    'postgresBinaries',
    'with the server stopped and restarted (a throwaway cluster)',
    () => {
      let server: ThrowawayPostgres;
      let http: HttpApp;
      const logger = new CapturingLogger();

      beforeAll(async () => {
        server = await startThrowawayPostgres();
        http = await bootHttpApp(platform, {
          database: { type: 'postgres', url: server.url },
          typeorm: POOL,
          session: { globalGuard: true },
          logger,
        });
        await http.app.listen(0, '127.0.0.1');
      }, 60_000);
      afterAll(async () => {
        await http?.close();
        await server?.destroy();
      });

      it('answers 503 while the server is down, 200 again within 5 s of its restart without restarting the app, loses nothing', async () => {
        const cookies = await issueSessions(http);
        const figures = await runOutage(http, cookies, {
          down: () => server.stop('immediate'),
          up: () => server.start(),
        });
        report('server crashed (pg_ctl stop -m immediate) and restarted', platform, figures);
        await expectFailedClosedAndRecovered(http, cookies, figures, logger);
      }, 60_000);
    },
  );
});
