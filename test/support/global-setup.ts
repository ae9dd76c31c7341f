import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as PgBouncerModule from './pgbouncer.js';
import type * as RequirementsModule from './requirements.js';

/**
 * The jest global setup (jest.config.js points here). It decides which services this run
 * has, starts one PgBouncer in front of DATABASE_URL (exported as PGBOUNCER_URL, which
 * `TEST_DATABASES` turns into a third database every suite runs on), and prints the
 * "services for this run" block; test/support/global-teardown.ts prints it again, after the
 * suites the run skipped, so it is the last thing a user reads. Locally a missing service
 * skips the suites that need it; under CI=true it fails the run here, naming the fix.
 *
 * Jest loads this file (and the teardown) with Node's own loader, where its `./x.js` →
 * `./x.ts` mapping does not apply: siblings are required by their `.ts` name, which jest's
 * transform hook compiles while the hook runs. They must import only Node built-ins.
 */
const requireSibling = createRequire(import.meta.url);

export default async function globalSetup(): Promise<void> {
  const {
    REQUIREMENTS,
    CHROMIUM_PATH,
    CHROMIUM_AVAILABLE,
    SERVICES_REPORT,
    SKIP_REPORT_ENV,
    formatServices,
    postgresBinDir,
  } = requireSibling('./requirements.ts') as typeof RequirementsModule;
  const { RUNNING_PGBOUNCER, findPgBouncer, startPgBouncer } = requireSibling(
    './pgbouncer.ts',
  ) as typeof PgBouncerModule;
  const ci = process.env.CI === 'true';

  const serverUrl = process.env.DATABASE_URL || null;
  if (serverUrl) await expectListening(serverUrl);
  if (serverUrl && !process.env.PGBOUNCER_URL) {
    const binary = findPgBouncer();
    if (binary) {
      const pgbouncer = await startPgBouncer(serverUrl, binary);
      process.env.PGBOUNCER_URL = pgbouncer.url;
      (globalThis as Record<symbol, unknown>)[RUNNING_PGBOUNCER] = pgbouncer;
    }
  }
  const binDir = postgresBinDir();
  const services: RequirementsModule.ServiceLine[] = [
    { label: 'PostgreSQL server', present: serverUrl && withoutPassword(serverUrl), requirement: 'postgres' },
    {
      label: 'PgBouncer',
      present: process.env.PGBOUNCER_URL ? withoutPassword(process.env.PGBOUNCER_URL) : null,
      requirement: 'pgbouncer',
    },
    { label: 'Chromium', present: CHROMIUM_AVAILABLE ? CHROMIUM_PATH : null, requirement: 'chromium' },
    { label: 'PostgreSQL binaries', present: binDir, requirement: 'postgresBinaries' },
  ];
  (globalThis as Record<symbol, unknown>)[SERVICES_REPORT] = services;

  const missing = services.filter((service) => service.present === null);
  if (ci && missing.length > 0) {
    throw new Error(
      `CI=true, so every suite must run, but this machine lacks:\n` +
        missing.map((service) => `  - ${REQUIREMENTS[service.requirement]}`).join('\n') +
        '\n(.ci/run installs and starts all of them.)',
    );
  }
  // Suites that skip append to this file (requirements.ts); the teardown prints and deletes it.
  const skipReport = join(tmpdir(), `nts-skipped-${process.pid}-${Date.now()}.jsonl`);
  writeFileSync(skipReport, '');
  process.env[SKIP_REPORT_ENV] = skipReport;
  process.stderr.write(`\n${formatServices(services)}\n`);
}

function withoutPassword(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

/** Fails the run at once, with the fix, when DATABASE_URL names a server nothing answers for. */
async function expectListening(url: string): Promise<void> {
  const { hostname, port } = new URL(url);
  const host = hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  const listening = await new Promise<boolean>((resolve) => {
    const socket = net.connect({ host, port: Number(port || 5432), timeout: 3000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
  if (!listening) {
    throw new Error(
      `DATABASE_URL is set, but nothing answers on ${host}:${port || 5432}: start PostgreSQL ` +
        '(e.g. pg_ctlcluster 15 main start), or unset DATABASE_URL to run on PGlite only.',
    );
  }
}
