import type { PgBouncer } from './pgbouncer.js';

/** Jest global teardown: stops the PgBouncer test/support/pgbouncer.ts started (same key as RUNNING_PGBOUNCER). */
export default async function globalTeardown(): Promise<void> {
  const holder = globalThis as Record<symbol, PgBouncer | undefined>;
  const key = Symbol.for('nestjs-typeorm-session.test.pgbouncer');
  await holder[key]?.stop();
  delete holder[key];
  delete process.env.PGBOUNCER_URL;
}
