import http from 'node:http';
import pg from 'pg';
import { SESSION_PURGE_JOB_NAME, SessionPurgeService } from '../../src/index.js';
import { bootHttpApp, CapturingLogger, type HttpApp } from '../support/http-app.js';
import { endPool, POSTGRES_DIRECT, type OpenDatabase } from '../support/databases.js';
import { describeEachWhere } from '../support/requirements.js';
import { sleep } from './load.js';

/**
 * Case 6 of issue 7, concurrency, on PostgreSQL (PGlite has one connection, so
 * nothing would run concurrently): 200 clients loop login → guarded request → logout →
 * guarded request for 20 s, while the purge runs every second, sliding expiry is on,
 * 20 more clients keep one short-lived session alive only by using it, and expired
 * rows keep arriving for the purge to delete. Every answer is the right one, no live
 * session is deleted, no deadlock, no unhandled rejection (jest 30 fails the running
 * test on any, wherever it comes from). Then `rotate` races
 * requests (and other rotations) on the old id: exactly one valid id remains.
 */
const LOOP_CLIENTS = 200;
const KEEPALIVE_CLIENTS = 20;
const DURATION_MS = 20_000;
const TTL_MS = 6_000; // rolling renews below 3 s left: keep-alive sessions live only by being used
const KEEPALIVE_EVERY_MS = 1_000;
const EXPIRED_BATCH = 50;
const EXPIRED_EVERY_MS = 250;
const ROTATE_ROUNDS = 30;

interface Answer {
  status: number;
  setCookie: string[];
  body: string;
}

/** One HTTP call over a shared keep-alive agent; a failed connection is status 0. */
function call(
  agent: http.Agent,
  port: number,
  method: string,
  path: string,
  cookie?: string,
  json?: unknown,
): Promise<Answer> {
  return new Promise((resolve) => {
    const payload = json === undefined ? undefined : JSON.stringify(json);
    const request = http.request(
      {
        agent,
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: {
          ...(cookie ? { cookie } : {}),
          ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            setCookie: response.headers['set-cookie'] ?? [],
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        response.on('error', () => resolve({ status: 0, setCookie: [], body: '' }));
      },
    );
    request.on('error', () => resolve({ status: 0, setCookie: [], body: '' }));
    request.end(payload);
  });
}

/** `session_id=value` of the session cookie a response set (empty value: cleared). */
function sessionCookie(answer: Answer): string | null {
  const line = answer.setCookie.find((cookie) => cookie.startsWith('session_id='));
  return line ? line.split(';')[0] : null;
}

describeEachWhere(POSTGRES_DIRECT, 'postgres', 'concurrency on %s', (_label, database) => {
  let db: OpenDatabase;
  let app: HttpApp;
  let port: number;
  let admin: pg.Pool;
  const logger = new CapturingLogger();

  beforeAll(async () => {
    db = await database.open();
    app = await bootHttpApp('express', {
      database: db.options,
      typeorm: { extra: { max: 20 } },
      session: { globalGuard: true, rolling: true, ttl: TTL_MS, purge: { cron: '* * * * * *' } },
      logger,
    });
    await app.app.listen(0, '127.0.0.1');
    port = (app.server.address() as { port: number }).port;
    // Beside the app's pool: the test's own statements (feeding, checking) run in parallel too.
    admin = new pg.Pool({ connectionString: db.url!, max: 4 });
  });
  afterAll(async () => {
    await endPool(admin);
    await app?.close();
    await db?.dispose();
  });

  it(
    `${LOOP_CLIENTS} clients loop login → guarded → logout → guarded for ${DURATION_MS / 1000} s with the purge every second and sliding expiry: every answer right, no live session lost`,
    async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: LOOP_CLIENTS + KEEPALIVE_CLIENTS });
      const wrong: string[] = [];
      const tally = {
        logins: 0,
        guardedWhileIn: 0,
        logouts: 0,
        guardedAfterOut: 0,
        keepAlive: 0,
        renewals: 0,
        expiredInserted: 0,
      };
      const [{ deadlocks: deadlocksBefore }] = (
        await admin.query('SELECT deadlocks::int FROM pg_stat_database WHERE datname = current_database()')
      ).rows;
      const deadline = performance.now() + DURATION_MS;
      const running = () => performance.now() < deadline;

      const loopClient = async (client: number) => {
        const user = `loop-${client}`;
        while (running()) {
          const login = await call(agent, port, 'POST', '/auth/login', undefined, { userId: user });
          const cookie = sessionCookie(login);
          tally.logins++;
          if (login.status !== 200 || !cookie) {
            wrong.push(`${user} login: ${login.status}`);
            continue;
          }
          const me = await call(agent, port, 'GET', '/me', cookie);
          tally.guardedWhileIn++;
          if (me.status !== 200 || JSON.parse(me.body).user?.id !== user)
            wrong.push(`${user} guarded while in: ${me.status} ${me.body}`);
          const logout = await call(agent, port, 'POST', '/auth/logout', cookie);
          tally.logouts++;
          if (logout.status !== 200 || sessionCookie(logout) !== 'session_id=')
            wrong.push(`${user} logout: ${logout.status}`);
          const after = await call(agent, port, 'GET', '/me', cookie);
          tally.guardedAfterOut++;
          if (after.status !== 401) wrong.push(`${user} guarded after logout: ${after.status}`);
        }
      };

      // Sessions that outlive their ttl several times over only because they are used.
      const keepAliveClient = async (client: number) => {
        const user = `keep-${client}`;
        const login = await call(agent, port, 'POST', '/auth/login', undefined, { userId: user });
        const cookie = sessionCookie(login)!;
        while (running()) {
          const me = await call(agent, port, 'GET', '/me', cookie);
          tally.keepAlive++;
          if (me.status !== 200 || JSON.parse(me.body).user?.id !== user)
            wrong.push(`${user} kept alive: ${me.status}`);
          if (sessionCookie(me) === cookie) tally.renewals++;
          await sleep(KEEPALIVE_EVERY_MS);
        }
        return cookie;
      };

      // Expired rows keep arriving, so every purge run has work while the clients run.
      const expiredFeeder = async () => {
        let batch = 0;
        while (running()) {
          await admin.query(
            `INSERT INTO sessions (id, "user", created, expires)
             SELECT 'expired-' || $1 || '-' || g, 'gone', now() - interval '2 hours', now() - interval '1 second'
             FROM generate_series(1, $2) g`,
            [batch++, EXPIRED_BATCH],
          );
          tally.expiredInserted += EXPIRED_BATCH;
          await sleep(EXPIRED_EVERY_MS);
        }
      };

      const purgeLinesBefore = logger.lines.length;
      const [keptCookies] = await Promise.all([
        Promise.all(Array.from({ length: KEEPALIVE_CLIENTS }, (_, i) => keepAliveClient(i))),
        Promise.all(Array.from({ length: LOOP_CLIENTS }, (_, i) => loopClient(i))),
        expiredFeeder(),
      ]);
      agent.destroy();

      // Stop the purge, waiting for a run in progress (the job waits for completion), then read what happened.
      await app.app.get(SessionPurgeService).schedulerRegistry.getCronJob(SESSION_PURGE_JOB_NAME).stop();
      const purgeRuns = logger.lines
        .slice(purgeLinesBefore)
        .filter(
          (line) => line.message.includes('SessionPurgeService') && /Purged \d+ expired session/.test(line.message),
        );
      const purged = purgeRuns.reduce((sum, line) => sum + Number(/Purged (\d+)/.exec(line.message)![1]), 0);
      const errors = logger.lines.filter((line) => line.level === 'error' || line.level === 'fatal');
      const [{ deadlocks: deadlocksAfter }] = (
        await admin.query('SELECT deadlocks::int FROM pg_stat_database WHERE datname = current_database()')
      ).rows;
      const rows = (await admin.query(`SELECT "user", expires > now() AS live FROM sessions ORDER BY "user"`)).rows;

      process.stderr.write(
        `[hardening:concurrency] ${LOOP_CLIENTS} + ${KEEPALIVE_CLIENTS} clients for ${DURATION_MS / 1000} s: ` +
          `${tally.logins} logins, ${tally.guardedWhileIn} guarded 200s while logged in, ${tally.logouts} logouts, ` +
          `${tally.guardedAfterOut} guarded 401s after logout, ${tally.keepAlive} keep-alive requests (${tally.renewals} sliding renewals), ` +
          `${wrong.length} wrong answers; purge ran ${purgeRuns.length} times and deleted ${purged} of ${tally.expiredInserted} expired rows fed in; ` +
          `${deadlocksAfter - deadlocksBefore} deadlocks\n`,
      );
      expect(wrong.slice(0, 20)).toEqual([]);
      expect(errors).toEqual([]);
      expect(deadlocksAfter - deadlocksBefore).toBe(0);
      expect(tally.logins).toBeGreaterThan(LOOP_CLIENTS);
      // Sliding expiry really carried the keep-alive sessions past their ttl...
      expect(tally.renewals).toBeGreaterThanOrEqual(KEEPALIVE_CLIENTS * Math.floor(DURATION_MS / TTL_MS));
      // ...and the purge, running all along, left every one of them (and only them) in place.
      expect(purgeRuns.length).toBeGreaterThanOrEqual(DURATION_MS / 1000 - 2);
      expect(purged).toBeGreaterThan(0);
      expect(rows.filter((row) => row.user === 'gone').length).toBeLessThanOrEqual(EXPIRED_BATCH * 8);
      expect(rows.filter((row) => row.user !== 'gone')).toEqual(
        Array.from({ length: KEEPALIVE_CLIENTS }, (_, i) => ({ user: `keep-${i}`, live: true })).sort((a, b) =>
          a.user.localeCompare(b.user),
        ),
      );
      for (const cookie of keptCookies)
        expect((await call(new http.Agent(), port, 'GET', '/me', cookie)).status).toBe(200);
    },
    DURATION_MS + 60_000,
  );

  it(`rotate racing requests and other rotations on the old id leaves exactly one valid id (${ROTATE_ROUNDS} rounds)`, async () => {
    await admin.query('DELETE FROM sessions');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    const outcomes = { rotated: 0, lostRace: 0, oldIdAnswers: new Map<number, number>() };
    await Promise.all(
      Array.from({ length: ROTATE_ROUNDS }, async (_, round) => {
        const user = `rotating-${round}`;
        const oldCookie = sessionCookie(await call(agent, port, 'POST', '/auth/login', undefined, { userId: user }))!;
        const [rotations, requests] = await Promise.all([
          Promise.all(Array.from({ length: 3 }, () => call(agent, port, 'POST', '/auth/rotate', oldCookie))),
          Promise.all(Array.from({ length: 10 }, () => call(agent, port, 'GET', '/me', oldCookie))),
        ]);
        const winners = rotations.filter((answer) => answer.status === 200 && JSON.parse(answer.body).rotated);
        // Losers either saw the old id already gone (401) or lost inside rotate (200, rotated: false).
        const losers = rotations.filter((answer) => !winners.includes(answer));
        expect(winners).toHaveLength(1);
        for (const loser of losers) expect([401, 200]).toContain(loser.status);
        expect(losers.filter((loser) => loser.status === 200).every((loser) => !JSON.parse(loser.body).rotated)).toBe(
          true,
        );
        for (const request of requests) {
          outcomes.oldIdAnswers.set(request.status, (outcomes.oldIdAnswers.get(request.status) ?? 0) + 1);
          expect([200, 401]).toContain(request.status);
        }
        outcomes.rotated++;
        outcomes.lostRace += losers.length;
        const newCookie = sessionCookie(winners[0])!;
        expect(newCookie).not.toBe(oldCookie);
        expect((await call(agent, port, 'GET', '/me', oldCookie)).status).toBe(401);
        const me = await call(agent, port, 'GET', '/me', newCookie);
        expect({ status: me.status, user: JSON.parse(me.body).user?.id }).toEqual({ status: 200, user });
        const rows = (await admin.query(`SELECT count(*)::int AS n FROM sessions WHERE "user" = $1`, [user])).rows;
        expect(rows).toEqual([{ n: 1 }]);
      }),
    );
    agent.destroy();
    process.stderr.write(
      `[hardening:concurrency] rotate: ${ROTATE_ROUNDS} rounds of 3 rotations + 10 requests on the old id: ` +
        `${outcomes.rotated} won, ${outcomes.lostRace} lost the race, old-id answers ${JSON.stringify(Object.fromEntries(outcomes.oldIdAnswers))}; ` +
        `exactly one valid id each time\n`,
    );
  }, 60_000);
});
