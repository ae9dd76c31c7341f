/**
 * `npm run bench:replicas`: what `readFromReplicas` takes off the primary. A throwaway primary
 * and one hot standby (`pg_basebackup -R`, streaming), app 3 on a data source with both, measured
 * with `readFromReplicas` off and on, interleaved. Reported per mode: req/s and latency, the
 * lookups each server ran (its own index-scan counter on `sessions`), the primary's statements
 * (transactions) per request, and the primary's CPU per request (all its processes, from /proc).
 * See bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import {
  startThrowawayPostgres,
  startThrowawayStandby,
  type ThrowawayPostgres,
} from '../test/hardening/throwaway-postgres.js';
import { AppProcess, type BenchApp } from './app-process.js';
import { checkApp } from './check.js';
import { BenchDatabase, type ValidSessions } from './database.js';
import { median, runLoad, spoiled, type LoadResult } from './load.js';
import { COMMON_USAGE, count, parseFlags } from './options.js';
import { describeEnvironment, environmentLine, formatNumber, table, writeJson } from './report.js';

const USAGE = `npm run bench:replicas -- [flags]
  --rows N            rows in sessions (default 100000; smoke 2000)
  --rounds N          measure each mode N times, interleaved; medians shown (default 3; smoke 1)
${COMMON_USAGE}
  (--database-url is not used: the bench starts its own primary and standby with initdb and pg_basebackup)`;

const { settings, values } = parseFlags(
  process.argv.slice(2),
  { rows: { type: 'string' }, rounds: { type: 'string' } },
  USAGE,
);
const rows = count(values.rows, settings.smoke ? 2000 : 100_000, 'rows');
const rounds = count(values.rounds, settings.smoke ? 1 : 3, 'rounds');
const log = (line: string) => console.log(line);

const MODES = [
  { readFromReplicas: false, label: 'readFromReplicas off' },
  { readFromReplicas: true, label: 'readFromReplicas on' },
] as const;

interface ModeResult extends LoadResult {
  label: string;
  /** Requests the app answered from its start to its stop (check, warm-up, measurement). */
  requestsInAll: number;
  primaryLookups: number;
  standbyLookups: number;
  /** Transactions the primary committed for the bench database over the app's life. */
  primaryTransactions: number;
  /** CPU of every primary process over the measurement, per measured request, µs. */
  primaryCpuMicrosPerRequest: number;
}

const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/**
 * CPU the primary has used, µs: the postmaster (with its exited children's) and every live
 * child (backends, WAL sender, background workers), from /proc. Backends of the measured app
 * live through the measurement, so reading before and after it covers them.
 */
function primaryCpuMicros(server: ThrowawayPostgres): number {
  const postmaster = Number(readFileSync(join(server.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // Fields after the command (which may hold spaces), from field 3 on.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const [ppid, utime, stime, cutime, cstime] = [1, 11, 12, 13, 14].map((i) => Number(fields[i]));
    if (Number(entry) === postmaster) ticks += utime + stime + cutime + cstime;
    else if (ppid === postmaster) ticks += utime + stime;
  }
  return (ticks * 1e6) / clockTicks;
}

const primary = await startThrowawayPostgres();
let standby: ThrowawayPostgres | null = null;
let database: BenchDatabase | null = null;
const measurements: ModeResult[] = [];
try {
  database = await BenchDatabase.create(primary.url, settings.databaseName);
  const environment = await describeEnvironment(await database.serverVersion());
  log(`machine: ${environmentLine(environment)}`);
  const valid = await database.addValidSessions(settings.cookies);
  await database.addLiveFiller(rows - settings.cookies, false, log);
  await database.settle();
  await database.disableAutovacuum();
  await database.checkpoint();
  standby = await startThrowawayStandby(primary);
  const standbyUrl = Object.assign(new URL(database.url), { port: String(standby.port) }).toString();
  const primaryPool = new pg.Pool({ connectionString: database.url, max: 1 });
  const standbyPool = new pg.Pool({ connectionString: standbyUrl, max: 1 });
  try {
    log(
      `load: ${settings.connections} connections, ${settings.warmup} s warm-up + ${settings.duration} s per mode; ` +
        `${rows.toLocaleString('en-US')} rows, requests rotating over ${settings.cookies.toLocaleString('en-US')} sessions; ` +
        `one primary, one standby (throwaway clusters on this machine); ${rounds} round${rounds === 1 ? '' : 's'}`,
    );
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < MODES.length; i++) {
        const mode = MODES[(i + round) % MODES.length];
        measurements.push(await measure(mode, valid, database.url, standbyUrl, primaryPool, standbyPool));
      }
    }
  } finally {
    await primaryPool.end();
    await standbyPool.end();
  }

  const results = MODES.map((mode) => {
    const runs = measurements.filter((m) => m.label === mode.label);
    const perRequest = (pick: (m: ModeResult) => number) => median(runs.map((m) => pick(m) / m.requestsInAll));
    return {
      label: mode.label,
      requestsPerSecond: median(runs.map((m) => m.requestsPerSecond)),
      p50: median(runs.map((m) => m.p50 ?? NaN)),
      p99: median(runs.map((m) => m.p99 ?? NaN)),
      primaryLookupsPerRequest: perRequest((m) => m.primaryLookups),
      standbyLookupsPerRequest: perRequest((m) => m.standbyLookups),
      primaryTransactionsPerRequest: perRequest((m) => m.primaryTransactions),
      primaryCpuMicrosPerRequest: median(runs.map((m) => m.primaryCpuMicrosPerRequest)),
    };
  });
  log('');
  log(
    table(
      [
        'mode',
        'req/s',
        'p50 ms',
        'p99 ms',
        'primary lookups/s',
        'primary lookups/req',
        'standby lookups/req',
        'primary xacts/req',
        'primary CPU µs/req',
      ],
      results.map((r) => [
        r.label,
        formatNumber(r.requestsPerSecond),
        formatNumber(r.p50, 2),
        formatNumber(r.p99, 2),
        formatNumber(r.primaryLookupsPerRequest * r.requestsPerSecond),
        formatNumber(r.primaryLookupsPerRequest, 3),
        formatNumber(r.standbyLookupsPerRequest, 3),
        formatNumber(r.primaryTransactionsPerRequest, 3),
        formatNumber(r.primaryCpuMicrosPerRequest),
      ]),
    ),
  );
  const [off, on] = results;
  const spared = 1 - on.primaryLookupsPerRequest / off.primaryLookupsPerRequest;
  const cpuSpared = 1 - on.primaryCpuMicrosPerRequest / off.primaryCpuMicrosPerRequest;
  log('');
  log(
    `share of lookups the primary no longer serves: ${formatNumber(100 * spared, 1)} %; ` +
      `primary CPU per request: ${formatNumber(100 * cpuSpared, 1)} % less`,
  );
  if (settings.jsonFile) {
    await writeJson(settings.jsonFile, {
      benchmark: 'replicas',
      environment,
      settings: { ...settings, rows, rounds },
      results,
      spared,
      cpuSpared,
      measurements,
    });
    log(`\nwrote ${settings.jsonFile}`);
  }
  // The smoke run's assertion: numbers came out, and the standby did serve.
  if (!(off.requestsPerSecond > 0 && on.requestsPerSecond > 0) || !(on.standbyLookupsPerRequest > 0.5)) {
    console.error('bench:replicas: no numbers, or the standby served no lookups with readFromReplicas on');
    process.exitCode = 1;
  }
} finally {
  await database?.close().catch(() => undefined);
  await standby?.destroy();
  await primary.destroy();
}

/** One mode: start the app, check it, warm it up, measure it, stop it, then read the servers' counters. */
async function measure(
  mode: (typeof MODES)[number],
  valid: ValidSessions,
  primaryUrl: string,
  standbyUrl: string,
  primaryPool: pg.Pool,
  standbyPool: pg.Pool,
): Promise<ModeResult> {
  const app: BenchApp = {
    number: 3,
    label: `AuthGuard, ${mode.label}`,
    entry: 'replica-guard.app.js',
    guarded: true,
    cookies: 'package',
  };
  const before = await counters(primaryPool, standbyPool);
  const running = await AppProcess.start(app, primaryUrl, {
    nodeFlags: settings.appNodeFlags,
    env: { STANDBY_URL: standbyUrl, READ_FROM_REPLICAS: String(mode.readFromReplicas) },
  });
  let result: LoadResult;
  let warm: LoadResult;
  let cpu: number;
  try {
    // Let a readFromReplicas app measure its standby before it is judged.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await checkApp(app, running.port, valid.packageCookies[0], valid.users[0]);
    const load = { port: running.port, connections: settings.connections, cookies: valid.packageCookies };
    warm = await runLoad({ ...load, duration: settings.warmup, recordLatencies: false });
    const cpuBefore = primaryCpuMicros(primary);
    result = await runLoad({ ...load, duration: settings.duration });
    cpu = primaryCpuMicros(primary) - cpuBefore;
    const problem = spoiled(result);
    if (problem) throw new Error(`${mode.label}: ${problem} during the measurement`);
  } finally {
    await running.stop();
  }
  // A server counts a connection's scans for sure when the connection ends (it flushes its
  // statistics then): the app has stopped, so wait until both counters stop moving.
  let after = await counters(primaryPool, standbyPool);
  for (let stable = 0; stable < 3;) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const next = await counters(primaryPool, standbyPool);
    stable = JSON.stringify(next) === JSON.stringify(after) ? stable + 1 : 0;
    after = next;
  }
  const requestsInAll = warm.responses + result.responses + 3;
  const measured: ModeResult = {
    label: mode.label,
    ...result,
    requestsInAll,
    primaryLookups: after.primaryScans - before.primaryScans,
    standbyLookups: after.standbyScans - before.standbyScans,
    primaryTransactions: after.primaryTransactions - before.primaryTransactions,
    primaryCpuMicrosPerRequest: cpu / Math.max(1, result.responses),
  };
  log(
    `  ${mode.label}: ${formatNumber(result.requestsPerSecond)} req/s, p50 ${formatNumber(result.p50, 2)} ms, ` +
      `p99 ${formatNumber(result.p99, 2)} ms; lookups on the primary ${measured.primaryLookups}, on the standby ` +
      `${measured.standbyLookups} (${requestsInAll} requests); primary CPU ${formatNumber(measured.primaryCpuMicrosPerRequest)} µs/req`,
  );
  return measured;
}

/** Each server's index scans of `sessions` (the guard's lookups) and the primary's committed transactions. */
async function counters(primaryPool: pg.Pool, standbyPool: pg.Pool) {
  const scans = async (pool: pg.Pool) =>
    Number(
      (await pool.query(`SELECT coalesce(idx_scan, 0) AS n FROM pg_stat_user_tables WHERE relname = 'sessions'`))
        .rows[0].n,
    );
  const transactions = Number(
    (await primaryPool.query('SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()'))
      .rows[0].n,
  );
  return {
    primaryScans: await scans(primaryPool),
    standbyScans: await scans(standbyPool),
    primaryTransactions: transactions,
  };
}
