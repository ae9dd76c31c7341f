import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

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
}

/** The directory of initdb/pg_ctl (Debian keeps them under /usr/lib/postgresql/<major>/bin), or null. */
export function postgresBinDir(): string | null {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const major of majors) if (existsSync(join(root, major, 'bin', 'pg_ctl'))) return join(root, major, 'bin');
  return null;
}

/** The Chromium the browser specs drive. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
