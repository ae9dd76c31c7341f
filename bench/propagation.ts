/**
 * `npm run bench:propagation`: issue 12's revocation propagation under the bench's load.
 * Three app-5 processes (the guard with `cache: true`) on one database, the load generator
 * driving all three (`--connections` split between them, rotating over the valid sessions)
 * while, one at a time, a session cached by every instance is deleted by SQL from outside
 * and instances B and C are asked until each answers 401. Measured: from the DELETE's return
 * (its commit is before it) to the end of each instance's first 401; and the load's req/s.
 * See bench/README.md.
 */
import http from 'node:http';
import { createHash } from 'node:crypto';
import pg from 'pg';
import { APPS, AppProcess } from './app-process.js';
import { BenchDatabase } from './database.js';
import { runLoad } from './load.js';
import { COMMON_USAGE, count, parseFlags } from './options.js';
import { describeEnvironment, environmentLine, writeJson } from './report.js';

const USAGE = `npm run bench:propagation -- [flags]
  --revocations N     sessions revoked during the load (default 300; smoke 20)
${COMMON_USAGE}`;

const { settings, values } = parseFlags(process.argv.slice(2), { revocations: { type: 'string' } }, USAGE);
const revocations = count(values.revocations, settings.smoke ? 20 : 300, 'revocations');
const CACHED_APP = APPS.find((app) => app.number === 5)!;
const INSTANCES = 3;
/** An instance that has not refused a revoked session within this long has failed the run. */
const EVENTUALLY_MS = 5000;

const database = await BenchDatabase.create(settings.serverUrl, `${settings.databaseName}_propagation`, {
  dropOnClose: settings.dropDatabase,
});
const environment = await describeEnvironment(await database.serverVersion());
console.log(environmentLine(environment));
const load = await database.addValidSessions(settings.cookies);
const targets = await database.addValidSessions(revocations);
await database.settle();
const apps: AppProcess[] = [];
const outside = new pg.Pool({ connectionString: database.url, max: 1 });
try {
  for (let i = 0; i < INSTANCES; i++) apps.push(await AppProcess.start(CACHED_APP, database.url));
  const agents = apps.map(() => new http.Agent({ keepAlive: true, maxSockets: 2 }));
  const ask = (instance: number, cookie: string) =>
    new Promise<number>((resolve) => {
      const request = http.get(
        { host: '127.0.0.1', port: apps[instance].port, path: '/me', agent: agents[instance], headers: { cookie } },
        (response) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode ?? 0));
        },
      );
      request.on('error', () => resolve(0));
    });

  const delays: number[] = [];
  /** To the sending of the request that got the first 401: a lower bound, free of that request's own queueing. */
  const sentDelays: number[] = [];
  const failures: string[] = [];
  const revoke = async () => {
    for (const cookie of targets.packageCookies) {
      // Cached by B and C (the first request looks it up, the second is answered from memory).
      for (const instance of [1, 2]) for (let i = 0; i < 2; i++) await ask(instance, cookie);
      const digest = createHash('sha256')
        .update(cookie.slice(cookie.indexOf('=') + 1))
        .digest('hex');
      await outside.query('DELETE FROM sessions WHERE id = $1', [digest]);
      const committed = performance.now();
      await Promise.all(
        [1, 2].map(async (instance) => {
          for (;;) {
            const sent = performance.now();
            const status = await ask(instance, cookie);
            if (status === 401) {
              sentDelays.push(sent - committed);
              return delays.push(performance.now() - committed);
            }
            if (performance.now() - committed > EVENTUALLY_MS) return failures.push(`instance ${instance}: ${status}`);
          }
        }),
      );
    }
  };

  const perInstance = Math.max(1, Math.floor(settings.connections / INSTANCES));
  // The revocations start a second into the load (the first instance's `during`) and the
  // three loads end with them.
  let revoked: Promise<void> | null = null;
  const during = () => (revoked ??= revoke());
  const loads = apps.map((app) =>
    // Long enough for any number of revocations: the load ends when they do.
    runLoad({ port: app.port, connections: perInstance, cookies: load.packageCookies, duration: 3600, during }),
  );
  const results = await Promise.all(loads);
  await revoked;
  const quantiles = (samples: number[]) => {
    const sorted = [...samples].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
    return `p50 ${at(0.5).toFixed(1)} ms, p99 ${at(0.99).toFixed(1)} ms, max ${at(1).toFixed(1)} ms (${sorted.length})`;
  };
  const requestsPerSecond = results.reduce((sum, result) => sum + result.requestsPerSecond, 0);
  console.log(
    `load: ${INSTANCES} instances × ${perInstance} connections, ${Math.round(requestsPerSecond)} req/s in all ` +
      `(non-2xx outside the revoked sessions: ${results.reduce((sum, result) => sum + result.non2xx, 0)})`,
  );
  console.log(
    `${revocations} revocations by SQL DELETE, DELETE's return → first 401 on each other instance: ` +
      `${quantiles(delays)}; to the sending of that request (a lower bound): ${quantiles(sentDelays)}; ` +
      `target p99 ≤ 20 ms, max ≤ 100 ms; ${failures.length} not refused within ${EVENTUALLY_MS} ms`,
  );
  if (settings.jsonFile) {
    await writeJson(settings.jsonFile, { environment, settings, requestsPerSecond, delays, sentDelays, failures });
  }
  if (failures.length > 0 || delays.length === 0) process.exitCode = 1;
} finally {
  await Promise.all(apps.map((app) => app.stop()));
  await outside.end();
  await database.close();
}
