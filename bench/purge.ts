/**
 * `npm run bench:purge`: app 3 (the package's AuthGuard) under the conditions the
 * purge creates: purge rate, guard p99 while it runs, lookup cost against table
 * size, and memory over a million requests. See bench/README.md.
 */
import { APPS, AppProcess } from './app-process.js';
import { checkApp } from './check.js';
import { BenchDatabase, type ValidSessions } from './database.js';
import { median, runLoad, spoiled, type LoadResult } from './load.js';
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
  --small-rows N      rows of the small table, for lookup cost against size (default 10000; smoke 2000)
  --live N            live rows kept through the purge: the large table (default 1000000; smoke 5000)
  --expired N         expired rows the purge deletes (default 1000000; smoke 50000, so the purge lasts long enough to measure under)
  --rounds N          small/large table measurements, interleaved; medians compared (default 3; smoke 1)
  --rss-requests N    guarded requests between the two RSS readings (default 1000000; smoke 5000)
${COMMON_USAGE}`;

const { settings, values } = parseFlags(
  process.argv.slice(2),
  {
    'small-rows': { type: 'string' },
    live: { type: 'string' },
    expired: { type: 'string' },
    rounds: { type: 'string' },
    'rss-requests': { type: 'string' },
  },
  USAGE,
);
const smallRows = count(values['small-rows'], settings.smoke ? 2000 : 10_000, 'small-rows');
const liveRows = count(values.live, settings.smoke ? 5000 : 1_000_000, 'live');
const expiredRows = count(values.expired, settings.smoke ? 50_000 : 1_000_000, 'expired');
const rounds = count(values.rounds, settings.smoke ? 1 : 3, 'rounds');
const rssRequests = count(values['rss-requests'], settings.smoke ? 5000 : 1_000_000, 'rss-requests');
if (smallRows < settings.cookies || liveRows < smallRows) {
  throw new Error('need --cookies <= --small-rows <= --live');
}
const app3 = APPS[2];
// Default options, except that the purge cron must not fire by itself: the bench decides
// when `purgeExpired()` runs (with `purge: false` it keeps the default batch size).
const appEnv = { BENCH_SESSION_OPTIONS: JSON.stringify({ purge: false }) };
const log = (line: string) => console.log(line);

/** A database with the sessions its requests rotate over. */
interface Table {
  database: BenchDatabase;
  valid: ValidSessions;
}

// Two databases on the server, so the small and the large table can be measured in
// alternation (a burst of other work on the machine then hits both, not one).
const dropOnClose = settings.dropDatabase;
const largeDatabase = await BenchDatabase.create(settings.serverUrl, settings.databaseName, { dropOnClose });
const smallDatabase = await BenchDatabase.create(settings.serverUrl, `${settings.databaseName}_small`, { dropOnClose });
const environment = await describeEnvironment(await largeDatabase.serverVersion());
log(`machine: ${environmentLine(environment)}`);
log(
  `load: ${settings.connections} connections, ${settings.warmup} s warm-up, ${settings.duration} s per measurement, ` +
    `rotating over ${settings.cookies} sessions`,
);

let app: AppProcess | null = null;
const report: Record<string, unknown> = {};
try {
  const small: Table = { database: smallDatabase, valid: await smallDatabase.addValidSessions(settings.cookies) };
  await small.database.addLiveFiller(smallRows - settings.cookies, false, log);
  await small.database.settle();
  const large: Table = { database: largeDatabase, valid: await largeDatabase.addValidSessions(settings.cookies) };
  await large.database.addLiveFiller(liveRows - settings.cookies, false, log);
  await large.database.addExpired(expiredRows, log);
  await large.database.settle();
  await large.database.checkpoint();

  // 1. `liveRows` live + `expiredRows` expired: time a purge with no load.
  app = await startChecked(large);
  const beforeQuietPurge = await large.database.countSessions();
  const quiet = await checkPurge(large, beforeQuietPurge, await runPurge(app));
  log(
    `  purge alone: ${formatNumber(quiet.deleted)} rows in ${formatNumber(quiet.ms / 1000, 2)} s = ` +
      `${formatNumber(quiet.rowsPerSecond)} rows/s`,
  );

  // 2. The expired rows put back: the guard's p99 idle, then while the same purge runs.
  await large.database.addExpired(expiredRows, log);
  await large.database.settle();
  await large.database.checkpoint();
  await warmUp(app, large);
  const beforeLoadedPurge = await large.database.countSessions();
  const idle = await measure(app, large, 'idle, before the purge');
  // The purge starts a second into the load, and the measurement covers its span only.
  let purging: Promise<{ ms: number; deleted: number }> | null = null;
  const purger = app;
  const during = await runLoad({
    port: purger.port,
    connections: settings.connections,
    cookies: large.valid.packageCookies,
    duration: 3600,
    during: () => (purging = runPurge(purger)),
  });
  if (!purging) throw new Error('the purge never started');
  const loaded = await checkPurge(large, beforeLoadedPurge, await purging);
  // On a loaded CI box the smoke purge (0.1 s) can end before any request completes: an
  // empty window is then no defect, but a failed request during it always is.
  const emptySmokeWindow = settings.smoke && during.responses === 0;
  assertClean(emptySmokeWindow ? { ...during, responses: 1 } : during, 'during the purge');
  log(
    `  during the purge: p50 ${formatNumber(during.p50, 2)} ms, p99 ${formatNumber(during.p99, 2)} ms ` +
      `over ${formatNumber(during.seconds, 1)} s; purge under load ${formatNumber(loaded.rowsPerSecond)} rows/s`,
  );
  await app.stop();
  app = null;

  // 3. Lookup cost against table size: `smallRows` vs `liveRows` (the purged table,
  // vacuumed), a fresh app each time, in alternation; medians compared.
  await large.database.settle();
  const smallRuns: LoadResult[] = [];
  const largeRuns: LoadResult[] = [];
  for (let round = 0; round < rounds; round++) {
    smallRuns.push(await measureFresh(small, `${compact(smallRows)} rows`));
    largeRuns.push(await measureFresh(large, `${compact(liveRows)} rows`));
  }
  const smallMedian = medianResult(smallRuns);
  const largeMedian = medianResult(largeRuns);

  // 4. Memory: a fresh app on the large table, RSS after warm-up and after `rssRequests`.
  await large.database.checkpoint();
  app = await startChecked(large);
  await warmUp(app, large);
  const afterWarmup = await app.call<NodeJS.MemoryUsage>('memory');
  const soak = await runLoad({
    port: app.port,
    connections: settings.connections,
    cookies: large.valid.packageCookies,
    amount: rssRequests,
    recordLatencies: false,
  });
  assertClean(soak, 'the memory run');
  const afterSoak = await app.call<NodeJS.MemoryUsage>('memory');
  const memoryLine =
    `RSS ${mb(afterWarmup.rss)} MB after warm-up, ${mb(afterSoak.rss)} MB after ${formatNumber(soak.responses)} ` +
    `more guarded requests (V8 heap used ${mb(afterWarmup.heapUsed)} -> ${mb(afterSoak.heapUsed)} MB)`;
  log(`  ${memoryLine}`);
  await app.stop();
  app = null;

  const p99Ratio = idle.p99 && during.p99 !== null ? during.p99 / idle.p99 : null;
  const p50Ratio = smallMedian.p50 && largeMedian.p50 !== null ? largeMedian.p50 / smallMedian.p50 : null;
  const rssGrowthMb = (afterSoak.rss - afterWarmup.rss) / 2 ** 20;
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

  const medians = rounds > 1 ? ` (median of ${rounds})` : '';
  log('');
  log(
    table(
      ['app 3 (AuthGuard)', 'req/s', 'p50 ms', 'p99 ms'],
      (
        [
          [`${compact(smallRows)} live rows${medians}`, smallMedian],
          [`${compact(liveRows)} live rows${medians}`, largeMedian],
          [`${compact(liveRows)} live + ${compact(expiredRows)} expired, idle`, idle],
          ['same, during purgeExpired()', during],
        ] as [string, LoadResult][]
      ).map(([label, result]) => [
        label,
        formatNumber(result.requestsPerSecond),
        formatNumber(result.p50, 2),
        formatNumber(result.p99, 2),
      ]),
    ),
  );
  log('');
  log(
    `purgeExpired(): ${formatNumber(quiet.deleted)} expired of ${formatNumber(quiet.deleted + liveRows)} rows ` +
      `in ${formatNumber(quiet.ms / 1000, 2)} s alone; ${formatNumber(loaded.ms / 1000, 2)} s under load`,
  );
  log(memoryLine);
  log('');
  log(targetLines(targets, !settings.smoke));

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
      rounds,
      rssRequests,
    },
    lookup: { small: smallMedian, large: largeMedian, smallRuns, largeRuns, idle, duringPurge: during },
    purge: { alone: quiet, underLoad: loaded },
    memory: {
      rssAfterWarmupMb: mb(afterWarmup.rss),
      rssAfterRequestsMb: mb(afterSoak.rss),
      heapUsedAfterWarmupMb: mb(afterWarmup.heapUsed),
      heapUsedAfterRequestsMb: mb(afterSoak.heapUsed),
      requests: soak.responses,
      growthMb: rssGrowthMb,
    },
    targets,
  });
} finally {
  await app?.stop();
  await largeDatabase.close();
  await smallDatabase.close();
}

if (settings.jsonFile) {
  await writeJson(settings.jsonFile, report);
  log(`\nwrote ${settings.jsonFile}`);
}

async function startChecked(on: Table): Promise<AppProcess> {
  const started = await AppProcess.start(app3, on.database.url, {
    nodeFlags: ['--expose-gc', ...settings.appNodeFlags],
    env: appEnv,
  });
  await checkApp(app3, started.port, on.valid.packageCookies[0], on.valid.users[0]);
  return started;
}

async function warmUp(running: AppProcess, on: Table): Promise<void> {
  await runLoad({
    port: running.port,
    connections: settings.connections,
    cookies: on.valid.packageCookies,
    duration: settings.warmup,
    recordLatencies: false,
  });
}

async function measure(running: AppProcess, on: Table, what: string): Promise<LoadResult> {
  const result = await runLoad({
    port: running.port,
    connections: settings.connections,
    cookies: on.valid.packageCookies,
    duration: settings.duration,
  });
  assertClean(result, what);
  log(
    `  ${what}: ${formatNumber(result.requestsPerSecond)} req/s, p50 ${formatNumber(result.p50, 2)} ms, ` +
      `p99 ${formatNumber(result.p99, 2)} ms`,
  );
  return result;
}

/** Starts app 3 on `on`, warms it up, measures it, stops it. */
async function measureFresh(on: Table, what: string): Promise<LoadResult> {
  await on.database.checkpoint();
  const running = await startChecked(on);
  try {
    await warmUp(running, on);
    return await measure(running, on, what);
  } finally {
    await running.stop();
  }
}

/** Each figure's median over `runs`. */
function medianResult(runs: LoadResult[]): LoadResult {
  return {
    ...runs[0],
    requestsPerSecond: median(runs.map((run) => run.requestsPerSecond)),
    p50: median(runs.map((run) => run.p50 ?? NaN)),
    p99: median(runs.map((run) => run.p99 ?? NaN)),
    responses: runs.reduce((sum, run) => sum + run.responses, 0),
    seconds: runs.reduce((sum, run) => sum + run.seconds, 0),
  };
}

/** Runs `purgeExpired()` in the app, timed there. */
function runPurge(running: AppProcess): Promise<{ ms: number; deleted: number }> {
  return running.call<{ ms: number; deleted: number }>('purge');
}

/** Checks the purge deleted every expired row and no live one (counted `before` it); its rate. */
async function checkPurge(
  on: Table,
  before: { live: number; expired: number },
  purge: { ms: number; deleted: number },
): Promise<{ deleted: number; ms: number; rowsPerSecond: number }> {
  const after = await on.database.countSessions();
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
