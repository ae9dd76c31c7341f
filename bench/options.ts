import { parseArgs } from 'node:util';

/** Settings shared by `npm run bench` and `npm run bench:purge`. */
export interface LoadSettings {
  /** Concurrent keep-alive connections autocannon holds open. */
  connections: number;
  /** Seconds measured per app. */
  duration: number;
  /** Seconds of discarded load before each measurement (JIT, pools, caches). */
  warmup: number;
  /** Distinct valid sessions the requests rotate over. */
  cookies: number;
  /** PostgreSQL server the bench creates its own database on. */
  serverUrl: string;
  /** Name of that database; dropped and recreated on every run. */
  databaseName: string;
  /** Drop it at the end (smoke runs, which use a name of their own). */
  dropDatabase: boolean;
  /** Where to write the results as JSON, if anywhere. */
  jsonFile: string | null;
  /** Seconds-long run for CI: tiny sizes, and a non-zero exit when a check fails. */
  smoke: boolean;
  /** Extra Node flags for the app processes (e.g. `--cpu-prof`). */
  appNodeFlags: string[];
}

const DEFAULT_SERVER_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

const COMMON_FLAGS = {
  connections: { type: 'string' },
  duration: { type: 'string' },
  warmup: { type: 'string' },
  cookies: { type: 'string' },
  'database-url': { type: 'string' },
  database: { type: 'string' },
  json: { type: 'string' },
  smoke: { type: 'boolean' },
  'app-node-flags': { type: 'string' },
  help: { type: 'boolean' },
} as const;

type FlagSpec = Record<string, { type: 'string' | 'boolean' }>;

/** Parses `argv` for the common flags plus the command's `extra` ones (read them with `count`). */
export function parseFlags<E extends FlagSpec>(
  argv: string[],
  extra: E,
  usage: string,
): { settings: LoadSettings; values: Record<string, string | boolean | undefined> } {
  const values = parseArgs({ args: argv, options: { ...COMMON_FLAGS, ...extra }, strict: true }).values as Record<
    string,
    string | boolean | undefined
  >;
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const smoke = values.smoke === true;
  const settings: LoadSettings = {
    connections: count(values.connections, smoke ? 10 : 50, 'connections'),
    duration: seconds(values.duration, smoke ? 1 : 10, 'duration'),
    warmup: seconds(values.warmup, smoke ? 0.5 : 5, 'warmup'),
    cookies: count(values.cookies, 1000, 'cookies'),
    serverUrl: String(values['database-url'] ?? process.env.DATABASE_URL ?? DEFAULT_SERVER_URL),
    // A smoke run (CI) gets a database of its own and drops it, so it never collides
    // with a full run, or another CI run, on the same server.
    databaseName: String(values.database ?? (smoke ? `nts_bench_smoke_${process.pid}` : 'nts_bench')),
    dropDatabase: smoke && values.database === undefined,
    jsonFile: typeof values.json === 'string' ? values.json : null,
    smoke,
    appNodeFlags:
      typeof values['app-node-flags'] === 'string' ? values['app-node-flags'].split(/\s+/).filter(Boolean) : [],
  };
  if (!/^[a-z_][a-z0-9_]*$/.test(settings.databaseName)) {
    throw new Error(`--database must be a plain lower-case identifier, got ${settings.databaseName}`);
  }
  return { settings, values };
}

/** A positive whole number from a flag such as `100000`, `100_000`, `100k` or `1m`. */
export function count(raw: unknown, fallback: number, flag: string): number {
  if (raw === undefined) return fallback;
  const match = /^(\d+(?:_\d+)*)([km]?)$/i.exec(String(raw));
  const value = match
    ? Number(match[1].replace(/_/g, '')) *
      ({ '': 1, k: 1e3, m: 1e6 } as const)[match[2].toLowerCase() as '' | 'k' | 'm']
    : NaN;
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new Error(`--${flag} must be a positive whole number, got ${String(raw)}`);
  return value;
}

function seconds(raw: unknown, fallback: number, flag: string): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`--${flag} must be a positive number of seconds, got ${String(raw)}`);
  return value;
}

/** Common flags, for the usage texts. */
export const COMMON_USAGE = `  --connections N     concurrent connections (default 50; smoke 10)
  --duration S        seconds measured per run (default 10; smoke 1)
  --warmup S          seconds of discarded load before each measurement (default 5; smoke 0.5)
  --cookies N         distinct valid sessions the requests rotate over (default 1000)
  --database-url URL  PostgreSQL server (default $DATABASE_URL, else ${DEFAULT_SERVER_URL})
  --database NAME     database the bench drops and recreates (default nts_bench; smoke: its own, dropped after)
  --json FILE         also write the results as JSON
  --app-node-flags F  extra Node flags for the app processes, e.g. "--cpu-prof --cpu-prof-dir=bench/results/prof"
  --smoke             a few seconds in all, tiny sizes; exits non-zero when a check fails`;
