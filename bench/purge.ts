/**
 * `npm run bench:purge`: app 3 (the package's AuthGuard) under the conditions the
 * purge creates: purge rate, guard p99 while it runs, lookup cost against table
 * size, and memory over a million requests. See bench/README.md.
 */
import { APPS, AppProcess } from './app-process.js';
import { checkApp } from './check.js';
import { BenchDatabase, type ValidSessions } from './database.js';
import { runLoad, spoiled, type LoadResult } from './load.js';
import { COMMON_USAGE, count, parseFlags } from './options.js';
import {
  describeEnvironment,
  environmentLine,
  formatNumber,
  table,
  type TargetCheck,
  targetLines,
  writeJson,
} from './report.js';

const USAGE = `npm run bench:purge -- [flags]
  --small-rows N      rows for the small-table lookup measurement (default 10000; smoke 2000)
  --live N            live rows kept through the purge, and the large table (default 1000000; smoke 5000)
  --expired N         expired rows the purge deletes (default 1000000; smoke 5000)
  --rss-requests N    guarded requests between the two RSS readings (default 1000000; smoke 5000)
${COMMON_USAGE}`;

const { settings, values } = parseFlags(
  process.argv.slice(2),
  {
    'small-rows': { type: 'string' },
    live: { type: 'string' },
    expired: { type: 'string' },
    'rss-requests': { type: 'string' },
  },
  USAGE,
);
const smallRows = count(values['small-rows'], settings.smoke ? 2000 : 10_000, 'small-rows');
const liveRows = count(values.live, settings.smoke ? 5000 : 1_000_000, 'live');
const expiredRows = count(values.expired, settings.smoke ? 5000 : 1_000_000, 'expired');
const rssRequests = count(values['rss-requests'], settings.smoke ? 5000 : 1_000_000, 'rss-requests');
if (smallRows < settings.cookies || liveRows < smallRows) {
  throw new Error('need --cookies <= --small-rows <= --live');
}
const app3 = APPS[2];
// Default options, except that the purge cron must not fire by itself: the bench decides
// when `purgeExpired()` runs (with `purge: false` it keeps the default batch size).
const appEnv = { BENCH_SESSION_OPTIONS: JSON.stringify({ purge: false }) };
const log = (line: string) => console.log(line);
const load = { connections: settings.connections };

const database = await BenchDatabase.create(settings.serverUrl, settings.databaseName);
const environment = await describeEnvironment(await database.serverVersion());
log(`machine: ${environmentLine(environment)}`);
log(
  `load: ${settings.connections} connections, ${settings.warmup} s warm-up, ${settings.duration} s per measurement, rotating over ${settings.cookies} sessions`,
);

let app: AppProcess | null = null;
let valid: ValidSessions;
const report: Record<string, unknown> = {};
try {
  valid = await database.addValidSessions(settings.cookies);
  await database.addLiveFiller(smallRows - settings.cookies, false, log);
  await database.settle();

  // 1. Lookup cost at the small table size.
  app = await startChecked();
  await warmUp(app);
  const small = await measure(app, 'small table');
  await app.stop();

  // 2. Grow to `liveRows` live + `expiredRows` expired, and time a purge with no load.
  await database.addLiveFiller(liveRows - smallRows, false, log);
  await database.addExpired(expiredRows, log);
  await database.settle();
  await database.checkpoint();
  app = await startChecked();
  const beforeQuietPurge = await database.countSessions();
  const quiet = await checkPurge(beforeQuietPurge, await runPurge(app));
  log(
    `  purge alone: ${formatNumber(quiet.deleted)} rows in ${formatNumber(quiet.ms / 1000, 2)} s = ${formatNumber(quiet.rowsPerSecond)} rows/s`,
  );

  // 3. The guard's p99 idle, then while the same purge runs (expired rows put back).
  await database.addExpired(expiredRows, log);
  await database.settle();
  await database.checkpoint();
  await warmUp(app);
  const beforeLoadedPurge = await database.countSessions();
  const idle = await measure(app, 'idle, before the purge');
  // The load starts with the purge and the measurement ends when it returns.
  const purging = runPurge(app);
  const during = await runLoad({
    ...load,
    port: app.port,
    cookies: valid.packageCookies,
    duration: 3600,
    stopWhen: purging,
  });
  const loaded = await checkPurge(beforeLoadedPurge, await purging);
  assertClean(during, 'during the purge');
  log(
    `  during the purge: p50 ${formatNumber(during.p50, 2)} ms, p99 ${formatNumber(during.p99, 2)} ms over ${formatNumber(during.seconds, 1)} s; purge under load ${formatNumber(loaded.rowsPerSecond)} rows/s`,
  );
  await app.stop();

  // 4. Lookup cost at the large table size, then memory over `rssRequests` requests.
  await database.settle();
  await database.checkpoint();
  app = await startChecked();
  await warmUp(app);
  const afterWarmup = await app.call<NodeJS.MemoryUsage>('memory');
  const rssAfterWarmup = afterWarmup.rss;
  const large = await measure(app, 'large table');
  const soak = await runLoad({
    ...load,
    port: app.port,
    cookies: valid.packageCookies,
    amount: rssRequests,
    recordLatencies: false,
  });
  assertClean(soak, 'the memory run');
  const afterSoak = await app.call<NodeJS.MemoryUsage>('memory');
  const rssAfterSoak = afterSoak.rss;
  log(
    `  RSS ${mb(rssAfterWarmup)} MB after warm-up, ${mb(rssAfterSoak)} MB after ${formatNumber(soak.responses)} more requests ` +
      `(V8 heap used ${mb(afterWarmup.heapUsed)} -> ${mb(afterSoak.heapUsed)} MB)`,
  );
  await app.stop();
  app = null;

  const p99Ratio = idle.p99 && during.p99 !== null ? during.p99 / idle.p99 : null;
  const p50Ratio = small.p50 && large.p50 !== null ? large.p50 / small.p50 : null;
  const rssGrowthMb = (rssAfterSoak - rssAfterWarmup) / 2 ** 20;
  const targets: TargetCheck[] = [
    {
      name: 'purge rate, rows/s',
      value: quiet.rowsPerSecond,
      target: '>= 200,000',
      met: quiet.rowsPerSecond >= 200_000,
    },
    {
      name: 'p99 during purge / idle p99',
      value: p99Ratio,
      target: '<= 2',
      met: p99Ratio === null ? null : p99Ratio <= 2,
    },
    {
      name: `p50 at ${compact(liveRows)} / p50 at ${compact(smallRows)} rows`,
      value: p50Ratio,
      target: '<= 1.2',
      met: p50Ratio === null ? null : p50Ratio <= 1.2,
    },
    {
      name: `RSS growth over ${compact(soak.responses)} requests, MB`,
      value: rssGrowthMb,
      target: '< 20',
      met: rssGrowthMb < 20,
    },
  ];

  log('');
  log(
    table(
      ['app 3 (AuthGuard)', 'req/s', 'p50 ms', 'p99 ms'],
      [
        [`${compact(smallRows)} live rows`, small],
        [`${compact(liveRows)} live + ${compact(expiredRows)} expired, idle`, idle],
        [`same, during purgeExpired()`, during],
        [`${compact(liveRows)} live rows`, large],
      ].map(([label, result]) => [
        label as string,
        formatNumber((result as LoadResult).requestsPerSecond),
        formatNumber((result as LoadResult).p50, 2),
        formatNumber((result as LoadResult).p99, 2),
      ]),
    ),
  );
  log('');
  log(
    `purgeExpired(): ${formatNumber(quiet.deleted)} expired of ${formatNumber(quiet.deleted + liveRows)} rows in ${formatNumber(quiet.ms / 1000, 2)} s alone; ${formatNumber(loaded.ms / 1000, 2)} s under load`,
  );
  log(
    `RSS: ${mb(rssAfterWarmup)} MB after warm-up, ${mb(rssAfterSoak)} MB after ${formatNumber(soak.responses)} more guarded requests ` +
      `(V8 heap used ${mb(afterWarmup.heapUsed)} -> ${mb(afterSoak.heapUsed)} MB)`,
  );
  log('');
  log(targetLines(targets));

  Object.assign(report, {
    benchmark: 'purge',
    environment,
    settings: {
      connections: settings.connections,
      warmupSeconds: settings.warmup,
      durationSeconds: settings.duration,
      cookies: settings.cookies,
      smallRows,
      liveRows,
      expiredRows,
      rssRequests,
    },
    lookup: { small, idle, duringPurge: during, large },
    purge: { alone: quiet, underLoad: loaded },
    memory: {
      rssAfterWarmupMb: mb(rssAfterWarmup),
      rssAfterRequestsMb: mb(rssAfterSoak),
      heapUsedAfterWarmupMb: mb(afterWarmup.heapUsed),
      heapUsedAfterRequestsMb: mb(afterSoak.heapUsed),
      requests: soak.responses,
      growthMb: rssGrowthMb,
    },
    targets,
  });
} finally {
  await app?.stop();
  await database.close();
}

if (settings.jsonFile) {
  await writeJson(settings.jsonFile, report);
  log(`\nwrote ${settings.jsonFile}`);
}

async function startChecked(): Promise<AppProcess> {
  const started = await AppProcess.start(app3, database.url, { nodeFlags: settings.appNodeFlags, env: appEnv });
  await checkApp(app3, started.port, valid.packageCookies[0], valid.users[0]);
  return started;
}

async function warmUp(running: AppProcess): Promise<void> {
  await runLoad({
    ...load,
    port: running.port,
    cookies: valid.packageCookies,
    duration: settings.warmup,
    recordLatencies: false,
  });
}

async function measure(running: AppProcess, what: string): Promise<LoadResult> {
  const result = await runLoad({
    ...load,
    port: running.port,
    cookies: valid.packageCookies,
    duration: settings.duration,
  });
  assertClean(result, what);
  log(
    `  ${what}: ${formatNumber(result.requestsPerSecond)} req/s, p50 ${formatNumber(result.p50, 2)} ms, p99 ${formatNumber(result.p99, 2)} ms`,
  );
  return result;
}

/** Runs `purgeExpired()` in the app, timed there. */
function runPurge(running: AppProcess): Promise<{ ms: number; deleted: number }> {
  return running.call<{ ms: number; deleted: number }>('purge');
}

/** Checks the purge deleted every expired row and no live one (counted `before` it); its rate. */
async function checkPurge(
  before: { live: number; expired: number },
  purge: { ms: number; deleted: number },
): Promise<{ deleted: number; ms: number; rowsPerSecond: number }> {
  const after = await database.countSessions();
  if (after.expired !== 0 || after.live !== before.live) {
    throw new Error(`purgeExpired() left ${after.expired} expired rows and ${after.live} of ${before.live} live ones`);
  }
  const deleted = before.expired - after.expired;
  if (purge.deleted !== deleted) {
    throw new Error(`purgeExpired() reported ${purge.deleted} deleted rows, the table lost ${deleted}`);
  }
  return { deleted, ms: purge.ms, rowsPerSecond: deleted / (purge.ms / 1000) };
}

function assertClean(result: LoadResult, what: string): void {
  const problem = spoiled(result);
  if (problem) throw new Error(`app 3 ${what}: ${problem}`);
}

function mb(bytes: number): number {
  return Math.round((bytes / 2 ** 20) * 10) / 10;
}

function compact(n: number): string {
  return n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}M` : n >= 1e3 && n % 1e3 === 0 ? `${n / 1e3}k` : String(n);
}
