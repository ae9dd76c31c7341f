import { jest } from '@jest/globals';
import { Injectable, Logger, type INestApplicationContext, type ModuleMetadata } from '@nestjs/common';
import { Cron, ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { CronJob } from 'cron';
import type { DataSource } from 'typeorm';
import {
  DEFAULT_PURGE_CRON,
  SESSION_PURGE_JOB_NAME,
  SessionConfigurationError,
  SessionModule,
  SessionPurgeService,
  type SessionModuleOptions,
} from '../src/index.js';
import { resolveSessionOptions } from '../src/session.options.js';
import { SessionStore } from '../src/session.store.js';
import { compileSessionModule, typeOrmRoot } from './support/apps.js';
import { POSTGRES_ONLY, TEST_DATABASES, type OpenDatabase } from './support/databases.js';

/** A custom schedule that does not fire while the suite runs (00:00:00 on 29 February). */
const CUSTOM_CRON = '0 0 0 29 2 *';

/** An app provider with its own (unnamed) @Cron job, to see that ScheduleModule explores it once. */
@Injectable()
class AppJobs {
  @Cron(CUSTOM_CRON)
  report(): void {}
}

interface Booted {
  app: INestApplicationContext;
  purge: SessionPurgeService;
  dataSource: DataSource;
}

async function boot(
  db: OpenDatabase,
  purge: SessionModuleOptions['purge'] | undefined,
  metadata: ModuleMetadata = {},
): Promise<Booted> {
  // compileSessionModule defaults to purge: false; `purge: undefined` gives the module's own default.
  const moduleRef = await compileSessionModule(db.options, { purge }, metadata);
  const app = await moduleRef.init();
  return { app, purge: app.get(SessionPurgeService), dataSource: app.get(getDataSourceToken()) };
}

async function seedExpired(dataSource: DataSource, count: number): Promise<void> {
  await dataSource.query(
    `INSERT INTO sessions (id, "user", created, expires)
     SELECT 'expired-' || i, 'u', now() - interval '2 days', now() - interval '1 day' FROM generate_series(1, $1::int) AS i`,
    [count],
  );
}

async function countRows(dataSource: DataSource): Promise<number> {
  const [{ n }] = await dataSource.query('SELECT count(*)::int AS n FROM sessions');
  return n;
}

describe('purge.cron validation', () => {
  it.each(['every tuesday', '61 * * * * *', ''])('rejects %j at startup, naming the option', (cron) => {
    expect(() => resolveSessionOptions({ purge: { cron } })).toThrow(SessionConfigurationError);
    expect(() => resolveSessionOptions({ purge: { cron } })).toThrow(/purge\.cron .* is not a cron expression/);
  });

  it('accepts six-field (with seconds) and five-field expressions', () => {
    expect(resolveSessionOptions({ purge: { cron: '*/30 * * * * *' } }).purge).toMatchObject({
      cron: '*/30 * * * * *',
    });
    expect(resolveSessionOptions({ purge: { cron: '*/5 * * * *' } }).purge).toMatchObject({ cron: '*/5 * * * *' });
    expect(resolveSessionOptions({}).purge).toMatchObject({ cron: DEFAULT_PURGE_CRON });
  });
});

describe.each(TEST_DATABASES)('SessionPurgeService scheduling on %s', (_label, database) => {
  let db: OpenDatabase;

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(async () => {
    await db.dispose();
  });
  afterEach(() => {
    jest.useRealTimers();
    jest.restoreAllMocks();
  });

  describe('when the app does not import ScheduleModule', () => {
    let subject: Booted;
    let job: CronJob;
    let closed = false;

    beforeAll(async () => {
      subject = await boot(db, undefined);
      job = subject.purge.schedulerRegistry.getCronJob(SESSION_PURGE_JOB_NAME);
    });
    afterAll(async () => {
      if (!closed) await subject.app.close();
    });
    afterEach(async () => {
      if (!closed) await subject.dataSource.query('DELETE FROM sessions');
    });

    it('registers a running job under SESSION_PURGE_JOB_NAME with the default expression, in its own registry', () => {
      expect(job.cronTime.source).toBe(DEFAULT_PURGE_CRON);
      expect(job.isActive).toBe(true);
      expect([...subject.purge.schedulerRegistry.getCronJobs().keys()]).toEqual([SESSION_PURGE_JOB_NAME]);
      expect(subject.purge.jobName).toBe(SESSION_PURGE_JOB_NAME);
      // The module did not smuggle ScheduleModule into the app.
      expect(() => subject.app.get(SchedulerRegistry)).toThrow(/SchedulerRegistry/);
    });

    it('fires purgeExpired every 10 minutes', async () => {
      const purgeExpired = jest.spyOn(subject.purge, 'purgeExpired').mockResolvedValue(0);
      job.stop();
      jest.useFakeTimers({ now: new Date('2031-03-04T05:03:20Z'), doNotFake: ['nextTick', 'queueMicrotask'] });
      try {
        job.start();
        const firstTick = job.nextDate().toMillis();
        expect(firstTick - Date.now()).toBeGreaterThan(0);
        expect(firstTick - Date.now()).toBeLessThanOrEqual(10 * 60_000);
        expect(new Date(firstTick).getUTCSeconds()).toBe(0);

        await jest.advanceTimersByTimeAsync(firstTick - Date.now() - 1);
        expect(purgeExpired).not.toHaveBeenCalled();
        await jest.advanceTimersByTimeAsync(1);
        expect(purgeExpired).toHaveBeenCalledTimes(1);
        await jest.advanceTimersByTimeAsync(10 * 60_000 - 1);
        expect(purgeExpired).toHaveBeenCalledTimes(1);
        await jest.advanceTimersByTimeAsync(1);
        expect(purgeExpired).toHaveBeenCalledTimes(2);
      } finally {
        job.stop();
        jest.useRealTimers();
        job.start();
      }
    });

    it('a tick purges the expired rows', async () => {
      await seedExpired(subject.dataSource, 40);
      const purgeExpired = jest.spyOn(subject.purge, 'purgeExpired');
      await job.fireOnTick();
      expect(purgeExpired).toHaveBeenCalledTimes(1);
      await expect(purgeExpired.mock.results[0].value).resolves.toBe(40);
      expect(await countRows(subject.dataSource)).toBe(0);
    });

    it('a failing tick is logged, throws nothing into the timer, and the next tick purges', async () => {
      await seedExpired(subject.dataSource, 25);
      const error = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
      jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
      await subject.dataSource.query('ALTER TABLE sessions RENAME TO sessions_away');
      try {
        await expect(job.fireOnTick()).resolves.toBeUndefined();
      } finally {
        await subject.dataSource.query('ALTER TABLE sessions_away RENAME TO sessions');
      }
      expect(error).toHaveBeenCalledTimes(1);
      expect(error.mock.calls[0][0]).toMatch(/^Purge of expired sessions failed .*SQLSTATE 42P01/);
      expect(job.isActive).toBe(true);

      await job.fireOnTick();
      expect(await countRows(subject.dataSource)).toBe(0);
      expect(error).toHaveBeenCalledTimes(1);
    });

    it('closing the app stops the job and unregisters it', async () => {
      await subject.app.close();
      closed = true;
      expect(job.isActive).toBe(false);
      expect(subject.purge.schedulerRegistry.doesExist('cron', SESSION_PURGE_JOB_NAME)).toBe(false);
    });
  });
});

// Wiring that does not depend on the database: on the server when there is one (it boots in
// milliseconds; every PGlite boot recreates the embedded database), else on PGlite.
describe.each([POSTGRES_ONLY[0] ?? TEST_DATABASES[0]])('SessionPurgeService wiring on %s', (_label, database) => {
  let db: OpenDatabase;

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(async () => {
    await db.dispose();
  });
  afterEach(() => {
    jest.restoreAllMocks();
  });

  describe('when the app imports ScheduleModule.forRoot() and has @Cron jobs of its own', () => {
    let subject: Booted;
    let registry: SchedulerRegistry;
    let closed = false;

    beforeAll(async () => {
      subject = await boot(db, { cron: CUSTOM_CRON }, { imports: [ScheduleModule.forRoot()], providers: [AppJobs] });
      registry = subject.app.get(SchedulerRegistry);
    });
    afterAll(async () => {
      if (!closed) await subject.app.close();
    });

    it("registers the job once, in the app's SchedulerRegistry, with the configured expression", () => {
      expect(subject.purge.schedulerRegistry).toBe(registry);
      const job = registry.getCronJob(SESSION_PURGE_JOB_NAME);
      expect(job.cronTime.source).toBe(CUSTOM_CRON);
      expect(job.isActive).toBe(true);
      // Our job plus the app's one: ScheduleModule explored the app once, not twice.
      const names = [...registry.getCronJobs().keys()];
      expect(names).toHaveLength(2);
      expect(names).toContain(SESSION_PURGE_JOB_NAME);
    });

    it('closing the app stops the job and unregisters it', async () => {
      const job = registry.getCronJob(SESSION_PURGE_JOB_NAME);
      await subject.app.close();
      closed = true;
      expect(job.isActive).toBe(false);
      expect(registry.doesExist('cron', SESSION_PURGE_JOB_NAME)).toBe(false);
    });
  });

  describe('with purge: false', () => {
    it('registers nothing without ScheduleModule, and purgeExpired still works on demand', async () => {
      const subject = await boot(db, false);
      try {
        expect(subject.purge.schedulerRegistry.getCronJobs().size).toBe(0);
        await seedExpired(subject.dataSource, 12);
        expect(await subject.purge.purgeExpired()).toBe(12);
      } finally {
        await subject.app.close();
      }
    });

    it("registers nothing in the app's SchedulerRegistry", async () => {
      const subject = await boot(db, false, { imports: [ScheduleModule.forRoot()] });
      try {
        const registry = subject.app.get(SchedulerRegistry);
        expect(registry.getCronJobs().size).toBe(0);
        expect(registry.doesExist('cron', SESSION_PURGE_JOB_NAME)).toBe(false);
      } finally {
        await subject.app.close();
      }
    });
  });

  describe('with a named data source', () => {
    it('registers the job as SESSION_PURGE_JOB_NAME:<data source>', async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [
          typeOrmRoot(db.options, { name: 'auth' }),
          SessionModule.forRoot({ dataSource: 'auth' }),
          ScheduleModule.forRoot(),
        ],
      }).compile();
      const app = await moduleRef.init();
      try {
        const registry = app.get(SchedulerRegistry);
        expect([...registry.getCronJobs().keys()]).toEqual([`${SESSION_PURGE_JOB_NAME}:auth`]);
        expect(app.get(SessionPurgeService).jobName).toBe(`${SESSION_PURGE_JOB_NAME}:auth`);
      } finally {
        await app.close();
      }
    });
  });

  it('refuses to start a second purge of the same data source, naming the fix', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        typeOrmRoot(db.options),
        SessionModule.forRoot({}),
        SessionModule.forRoot({ ttl: 60_000 }),
        ScheduleModule.forRoot(),
      ],
    }).compile();
    try {
      await expect(moduleRef.init()).rejects.toThrow(/already registered.*set `purge: false` on all but one/);
    } finally {
      await moduleRef.close();
    }
  });

  it('shutdown waits for the running batch, then the run stops', async () => {
    const subject = await boot(db, { cron: CUSTOM_CRON, batchSize: 10 });
    const store = subject.app.get(SessionStore);
    const events: string[] = [];
    let release!: () => void;
    const batch = jest.spyOn(store, 'purgeExpiredBatch').mockImplementation(
      () =>
        new Promise((resolve) => {
          release = () => {
            events.push('batch done');
            resolve({ locked: true, found: 10, deleted: 10, lastExpires: null });
          };
        }),
    );
    // TypeORM closes the connection in onApplicationShutdown: the batch must be done by then.
    const destroy = subject.dataSource.destroy.bind(subject.dataSource);
    jest.spyOn(subject.dataSource, 'destroy').mockImplementation(() => {
      events.push('connection closed');
      return destroy();
    });
    // Barrier: the purge's shutdown hook has begun, and its promise is at hand (boxed, or the
    // barrier would adopt it and wait for the hook to finish).
    let hookEntered!: (hook: { waiting: Promise<void> }) => void;
    const hook = new Promise<{ waiting: Promise<void> }>((resolve) => (hookEntered = resolve));
    const beforeShutdown = subject.purge.beforeApplicationShutdown.bind(subject.purge);
    jest.spyOn(subject.purge, 'beforeApplicationShutdown').mockImplementation(() => {
      const waiting = beforeShutdown();
      hookEntered({ waiting });
      return waiting;
    });
    const log = jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    const run = subject.purge.purgeExpired();
    const closing = subject.app.close().then(() => events.push('app closed'));

    const { waiting } = await hook;
    let hookDone = false;
    void waiting.then(() => (hookDone = true));
    // One full turn of the event loop: a hook that did not wait would have settled by now.
    await new Promise((resolve) => setImmediate(resolve));
    expect(hookDone).toBe(false);
    expect(events).toEqual([]);

    release();
    await closing;
    expect(events).toEqual(['batch done', 'connection closed', 'app closed']);
    expect(await run).toBe(10);
    expect(batch).toHaveBeenCalledTimes(1);
    expect(log).toHaveBeenCalledWith(expect.stringMatching(/stopped early for application shutdown$/));
  });
});
