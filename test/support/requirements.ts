import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

// Only Node built-ins here: the jest global setup and teardown load this file too, outside
// jest's module mapping (see test/support/global-setup.ts), where sibling imports fail.

/**
 * What a suite needs beyond Node.js, and the command that provides it. With nothing
 * installed, `npm test` runs every suite PGlite can host and reports each of the others
 * as skipped with its reason and this command; under `CI=true` a missing service fails
 * the run instead (`.ci/run` provides them all).
 */
export const REQUIREMENTS = {
  postgres: 'a PostgreSQL server: run with DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm test',
  pgbouncer: 'PgBouncer and a PostgreSQL server: apt-get install pgbouncer, and set DATABASE_URL',
  chromium: 'Chromium: apt-get install chromium (or CHROMIUM_PATH=/path/to/chromium)',
  postgresBinaries:
    'the PostgreSQL server binaries (initdb, pg_ctl) to start throwaway clusters: apt-get install postgresql',
} as const;

export type Requirement = keyof typeof REQUIREMENTS;

export const CI = process.env.CI === 'true';

/**
 * The file the global setup names in `$NTS_SKIP_REPORT`: one JSON line per skipped suite,
 * which the global teardown prints at the end of the run (jest's default reporter shows
 * skipped titles only when a single file runs).
 */
export const SKIP_REPORT_ENV = 'NTS_SKIP_REPORT';

/** One line of the skip report. */
export interface SkippedSuite {
  name: string;
  requirement: Requirement;
}

/**
 * `describe.each(table)(name, fn)`, or, when `table` is empty because `requirement` is
 * missing, one skipped test whose title says what is missing and how to enable it
 * (`describe.each([])` is a load error in jest). Under `CI=true` an empty table is a
 * failing test instead: CI must never skip a suite silently.
 */
export function describeEachWhere<Row extends unknown[]>(
  table: Row[],
  requirement: Requirement,
  name: string,
  fn: (...row: Row) => void,
): void {
  if (table.length > 0) {
    describe.each(table)(name, fn);
    return;
  }
  skipOrFail(name.replace(/%s|%p|%i|%d/g, '…'), requirement);
}

/** `describe(name, fn)` when `available`, else skipped (or, under CI, failed) as `describeEachWhere` does. */
export function describeWhere(available: boolean, requirement: Requirement, name: string, fn: () => void): void {
  if (available) {
    describe(name, fn);
    return;
  }
  skipOrFail(name, requirement);
}

function skipOrFail(name: string, requirement: Requirement): void {
  const needs = REQUIREMENTS[requirement];
  if (CI) {
    test(`${name} (required under CI=true)`, () => {
      throw new Error(`CI=true but this suite cannot run: it needs ${needs}`);
    });
    return;
  }
  test.skip(`${name} — skipped: needs ${needs}`, () => undefined);
  const report = process.env[SKIP_REPORT_ENV];
  if (report) appendFileSync(report, `${JSON.stringify({ name, requirement } satisfies SkippedSuite)}\n`);
}

/**
 * The directory of initdb/pg_ctl, or null: Debian keeps them off PATH under
 * /usr/lib/postgresql/<major>/bin (newest major first); elsewhere `pg_config --bindir`, or
 * the directory of `pg_ctl` on PATH.
 */
export function postgresBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const major of majors) if (existsSync(join(root, major, 'bin', 'pg_ctl'))) return join(root, major, 'bin');
  for (const lookup of ['pg_config --bindir', 'dirname "$(command -v pg_ctl)"']) {
    try {
      const dir = execFileSync('sh', ['-c', lookup], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      if (dir && existsSync(join(dir, 'pg_ctl')) && existsSync(join(dir, 'initdb'))) return dir;
    } catch {
      // not installed this way
    }
  }
  return null;
}

/** The Chromium the browser specs drive. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Whether the browser specs can run (`CHROMIUM_PATH`, default Debian's `/usr/bin/chromium`, exists). */
export const CHROMIUM_AVAILABLE = existsSync(CHROMIUM_PATH);

/** Where the global setup leaves the run's services for the global teardown (same process). */
export const SERVICES_REPORT = Symbol.for('nestjs-typeorm-session.test.services');

/** One service of the run: present (and where), or null with the requirement that provides it. */
export interface ServiceLine {
  label: string;
  present: string | null;
  requirement: Requirement;
}

/** The "services for this run" block the global setup and teardown print. */
export function formatServices(services: ServiceLine[]): string {
  const width = Math.max(...services.map((service) => service.label.length));
  const state = (service: ServiceLine) =>
    service.present === null ? `skipped — needs ${REQUIREMENTS[service.requirement]}` : `present: ${service.present}`;
  return [
    'Services for this run:',
    ...services.map((service) => `  ${service.label.padEnd(width)}  ${state(service)}`),
  ].join('\n');
}

/** The suites a run skipped, grouped by what they need (from the lines of `$NTS_SKIP_REPORT`). */
export function formatSkipped(skipped: SkippedSuite[]): string {
  if (skipped.length === 0) return 'Skipped suites: none.';
  const lines = [`Skipped suites (${skipped.length}; not failures — CI=true runs them all):`];
  for (const requirement of Object.keys(REQUIREMENTS) as Requirement[]) {
    const names = [...new Set(skipped.filter((suite) => suite.requirement === requirement).map((suite) => suite.name))];
    if (names.length === 0) continue;
    lines.push(`  needing ${REQUIREMENTS[requirement]}`);
    for (const name of names) {
      const times = skipped.filter((suite) => suite.requirement === requirement && suite.name === name).length;
      lines.push(`    ○ ${name}${times > 1 ? ` (×${times})` : ''}`);
    }
  }
  return lines.join('\n');
}
