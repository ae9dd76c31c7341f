import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { PgBouncer } from './pgbouncer.js';
import type * as RequirementsModule from './requirements.js';

/** Loaded as test/support/global-setup.ts is: siblings by their `.ts` name. */
const requireSibling = createRequire(import.meta.url);

/**
 * Jest global teardown: stops the PgBouncer the global setup started, then prints the
 * suites this run skipped and the services block again, after jest's summary, so what
 * was not tested (and the command that would test it) is the last thing a user reads.
 */
export default async function globalTeardown(): Promise<void> {
  const { RUNNING_PGBOUNCER } = requireSibling('./pgbouncer.ts') as typeof import('./pgbouncer.js');
  const { SERVICES_REPORT, SKIP_REPORT_ENV, formatServices, formatSkipped } = requireSibling(
    './requirements.ts',
  ) as typeof RequirementsModule;
  const holder = globalThis as Record<symbol, unknown>;
  await (holder[RUNNING_PGBOUNCER] as PgBouncer | undefined)?.stop();
  delete holder[RUNNING_PGBOUNCER];
  delete process.env.PGBOUNCER_URL;

  const reportFile = process.env[SKIP_REPORT_ENV];
  const skipped: RequirementsModule.SkippedSuite[] =
    reportFile && existsSync(reportFile)
      ? readFileSync(reportFile, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line))
      : [];
  if (reportFile) rmSync(reportFile, { force: true });
  delete process.env[SKIP_REPORT_ENV];
  const services = holder[SERVICES_REPORT] as RequirementsModule.ServiceLine[] | undefined;
  delete holder[SERVICES_REPORT];
  if (services) process.stderr.write(`\n${formatSkipped(skipped)}\n${formatServices(services)}\n`);
}
