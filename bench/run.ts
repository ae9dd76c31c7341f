/**
 * `npm run bench`: the four apps of issue 6 and issue 12's cached guard (app 5) against one PostgreSQL, one at a time,
 * each checked, warmed up and measured with the same load. See bench/README.md.
 */
import { APPS, AppProcess, type BenchApp, DEFAULT_APPS } from './app-process.js';
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

const USAGE = `npm run bench -- [flags]
  --rows N            rows in each sessions table (default 100000; smoke 2000), e.g. --rows 1m
  --apps LIST         which apps to run, e.g. 2,3 (default 1,2,3,4,5; 6 is an empty guard, only when asked)
  --rounds N          measure every app N times, interleaved; the table shows medians (default 3; smoke 1)
${COMMON_USAGE}`;

interface AppResult extends LoadResult {
  number: number;
  label: string;
  /** CPU time the app process spent per measured request, in µs: steadier than req/s on a shared machine. */
  appCpuMicrosPerRequest: number;
}

const { settings, values } = parseFlags(
  process.argv.slice(2),
  { rows: { type: 'string' }, apps: { type: 'string' }, rounds: { type: 'string' } },
  USAGE,
);
const rows = count(values.rows, settings.smoke ? 2000 : 100_000, 'rows');
const rounds = count(values.rounds, settings.smoke ? 1 : 3, 'rounds');
if (rows < settings.cookies) throw new Error(`--rows (${rows}) must be at least --cookies (${settings.cookies})`);
const apps = selectApps(values.apps);
const log = (line: string) => console.log(line);

const database = await BenchDatabase.create(settings.serverUrl, settings.databaseName, {
  dropOnClose: settings.dropDatabase,
});
const environment = await describeEnvironment(await database.serverVersion());
log(`machine: ${environmentLine(environment)}`);
log(
  `load: ${settings.connections} connections, ${settings.warmup} s warm-up + ${settings.duration} s per app; ` +
    `${rows.toLocaleString('en-US')} rows per table, requests rotating over ${settings.cookies.toLocaleString('en-US')} sessions; ` +
    `${rounds} round${rounds === 1 ? '' : 's'}`,
);

const measurements: AppResult[] = [];
try {
  const valid = await database.addValidSessions(settings.cookies);
  await database.addLiveFiller(rows - settings.cookies, true, log);
  await database.disableAutovacuum();
  for (let round = 0; round < rounds; round++) {
    if (rounds > 1) log(`round ${round + 1} of ${rounds}`);
    // Each round starts one app later, so no app always runs right after the same one.
    for (let i = 0; i < apps.length; i++) {
      measurements.push(await measureApp(apps[(i + round) % apps.length], valid));
    }
  }
} finally {
  await database.close();
}

/** Per app, the median of each figure over the rounds (each figure on its own). */
const results: AppResult[] = apps
  .map((app) => measurements.filter((m) => m.number === app.number))
  .filter((runs) => runs.length > 0)
  .map((runs) => ({
    ...runs[0],
    requestsPerSecond: median(runs.map((m) => m.requestsPerSecond)),
    p50: median(runs.map((m) => m.p50 ?? NaN)),
    p99: median(runs.map((m) => m.p99 ?? NaN)),
    appCpuMicrosPerRequest: median(runs.map((m) => m.appCpuMicrosPerRequest)),
    responses: runs.reduce((sum, m) => sum + m.responses, 0),
    seconds: runs.reduce((sum, m) => sum + m.seconds, 0),
  }));

const byNumber = (n: number) => results.find((result) => result.number === n)?.requestsPerSecond ?? null;
const ratio = (a: number | null, b: number | null) => (a !== null && b ? a / b : null);
const ratio32 = ratio(byNumber(3), byNumber(2));
const ratio34 = ratio(byNumber(3), byNumber(4));
const ratio51 = ratio(byNumber(5), byNumber(1));
const p99Of = (n: number) => results.find((result) => result.number === n)?.p99 ?? null;
const p99Ratio51 = ratio(p99Of(5), p99Of(1));
/** The ratios within each round, to see how much they move from round to round. */
const roundRatios = Array.from({ length: rounds }, (_, round) => {
  const inRound = measurements.slice(round * apps.length, (round + 1) * apps.length);
  const rps = (n: number) => inRound.find((m) => m.number === n)?.requestsPerSecond ?? null;
  return { '3/2': ratio(rps(3), rps(2)), '3/4': ratio(rps(3), rps(4)), '5/1': ratio(rps(5), rps(1)) };
});
const targets: TargetCheck[] = [
  {
    name: 'ratio 3/2 (package vs raw pg floor)',
    value: ratio32,
    target: '>= 0.95',
    met: ratio32 === null ? null : ratio32 >= 0.95,
  },
  {
    name: 'ratio 3/4 (package vs express-session)',
    value: ratio34,
    target: '>= 2',
    met: ratio34 === null ? null : ratio34 >= 2,
  },
  {
    name: 'ratio 5/1 (cached guard vs no guard)',
    value: ratio51,
    target: '>= 0.9',
    met: ratio51 === null ? null : ratio51 >= 0.9,
  },
  {
    name: 'p99 5/1 (cached guard vs no guard)',
    value: p99Ratio51,
    target: '<= 1.2',
    met: p99Ratio51 === null ? null : p99Ratio51 <= 1.2,
  },
];

log('');
log(
  table(
    ['app', 'req/s', 'p50 ms', 'p99 ms', 'app CPU µs/req'],
    results.map((result) => [
      `${result.number} ${result.label}`,
      formatNumber(result.requestsPerSecond),
      formatNumber(result.p50, 2),
      formatNumber(result.p99, 2),
      formatNumber(result.appCpuMicrosPerRequest),
    ]),
  ),
);
log('');
if (rounds > 1) {
  const list = (key: '3/2' | '3/4' | '5/1') => roundRatios.map((r) => formatNumber(r[key], 2)).join(', ');
  log(`per round: 3/2 ${list('3/2')}; 3/4 ${list('3/4')}; 5/1 ${list('5/1')} (table: medians over ${rounds} rounds)`);
}
log(targetLines(targets, !settings.smoke));

if (settings.jsonFile) {
  await writeJson(settings.jsonFile, {
    benchmark: 'guard',
    environment,
    settings: {
      connections: settings.connections,
      warmupSeconds: settings.warmup,
      durationSeconds: settings.duration,
      rows,
      cookies: settings.cookies,
      rounds,
    },
    apps: results,
    ratios: { '3/2': ratio32, '3/4': ratio34, '5/1': ratio51, 'p99 5/1': p99Ratio51 },
    roundRatios,
    measurements,
    targets,
  });
  log(`\nwrote ${settings.jsonFile}`);
}

// Numbers came out for every app, or the run failed (the smoke test's assertion).
const missing = apps.filter((app) => {
  const result = results.find((r) => r.number === app.number);
  return !result || !(result.requestsPerSecond > 0) || result.p50 === null || result.p99 === null;
});
if (missing.length) {
  console.error(`no numbers for app(s) ${missing.map((app) => app.number).join(', ')}`);
  process.exitCode = 1;
}

/** Starts `app`, checks it, warms it up, measures it, stops it. */
async function measureApp(app: BenchApp, valid: ValidSessions): Promise<AppResult> {
  const cookies = app.cookies === 'package' ? valid.packageCookies : valid.expressCookies;
  // Every app starts from the same state: vacuumed (app 4 leaves dead tuples) and checkpointed.
  await database.settle();
  await database.checkpoint();
  const running = await AppProcess.start(app, database.url, { nodeFlags: settings.appNodeFlags });
  try {
    await checkApp(app, running.port, cookies[0], valid.users[0]);
    const load = { port: running.port, connections: settings.connections, cookies };
    await runLoad({ ...load, duration: settings.warmup, recordLatencies: false });
    const cpuBefore = await running.cpuMicros();
    const result = await runLoad({ ...load, duration: settings.duration });
    const appCpuMicrosPerRequest = ((await running.cpuMicros()) - cpuBefore) / Math.max(1, result.responses);
    const problem = spoiled(result);
    if (problem) throw new Error(`app ${app.number} (${app.label}): ${problem} during the measurement`);
    log(
      `  ${app.number} ${app.label}: ${formatNumber(result.requestsPerSecond)} req/s, p50 ${formatNumber(result.p50, 2)} ms, ` +
        `p99 ${formatNumber(result.p99, 2)} ms, app CPU ${formatNumber(appCpuMicrosPerRequest)} µs/req`,
    );
    return { number: app.number, label: app.label, ...result, appCpuMicrosPerRequest };
  } finally {
    await running.stop();
  }
}

function selectApps(list: unknown): BenchApp[] {
  if (list === undefined) return DEFAULT_APPS;
  const numbers = String(list)
    .split(',')
    .map((item) => Number(item.trim()));
  const chosen = APPS.filter((app) => numbers.includes(app.number));
  if (chosen.length !== numbers.length) throw new Error(`--apps takes numbers from 1 to 6, got ${String(list)}`);
  return chosen;
}
