import { relative } from 'node:path';
import { afterAll, beforeAll, expect } from '@jest/globals';
import pg from 'pg';

/**
 * Jest `setupFilesAfterEnv`: lets `npm test` run spec files two at a time (`--maxWorkers=2`)
 * while the suites that measure time under load run alone. Those hold an exclusive
 * PostgreSQL advisory lock for their whole file, every other file a shared one, so while
 * one of them runs nothing else does (PostgreSQL queues a shared request behind a waiting
 * exclusive one: they are not starved). A load test sharing two cores with another suite
 * measures the other suite: a sliding session whose keep-alive requests come seconds apart
 * expires, a black-holed listener is noticed late.
 *
 * Without a PostgreSQL server (PGlite only) there is nothing to lock with, and nothing to
 * protect: the suites that need to run alone all need the server. A jest started by a suite
 * (the leak check's) runs in band and sets NTS_SUITE_LOCK=off: its files must not wait for
 * the lock their parent holds.
 */
const RUNS_ALONE = [
  'test/cache/listener.spec.ts',
  'test/hardening/cache-instances.spec.ts',
  'test/hardening/concurrency.spec.ts',
  'test/hardening/instances.spec.ts',
  'test/hardening/leak.spec.ts',
  'test/hardening/outage.spec.ts',
  'test/hardening/replicas.spec.ts',
];

/** Namespace and key of the lock: ASCII `ntsT`, `jest`. */
const LOCK_KEY = [0x6e747354, 0x6a657374] as const;

/** Long enough to wait behind the longest suite that runs alone. */
const WAIT_MS = 30 * 60_000;

const serverUrl = process.env.DATABASE_URL;

if (serverUrl && process.env.NTS_SUITE_LOCK !== 'off') {
  let client: pg.Client | null = null;
  beforeAll(async () => {
    const testPath = relative(process.cwd(), expect.getState().testPath ?? '');
    const alone = RUNS_ALONE.includes(testPath);
    client = new pg.Client({ connectionString: serverUrl, application_name: `nts jest lock ${testPath}` });
    await client.connect();
    await client.query(alone ? 'SELECT pg_advisory_lock($1, $2)' : 'SELECT pg_advisory_lock_shared($1, $2)', [
      ...LOCK_KEY,
    ]);
  }, WAIT_MS);
  afterAll(async () => {
    // Ending the session releases the lock.
    await client?.end();
  });
}
