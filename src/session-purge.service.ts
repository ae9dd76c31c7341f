import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  Optional,
} from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob } from 'cron';
import { describeDatabaseError, SessionConfigurationError } from './errors.js';
import { SESSION_OPTIONS, SESSION_PURGE_JOB, SESSION_PURGE_JOB_NAME } from './session.constants.js';
import type { ResolvedSessionOptions } from './session.options.js';
import { SessionStore } from './session.store.js';

/** @internal The job name of a module bound to `dataSource` (the default one keeps the plain name). */
export function sessionPurgeJobName(dataSource: string | undefined): string {
  return dataSource === undefined || dataSource === 'default'
    ? SESSION_PURGE_JOB_NAME
    : `${SESSION_PURGE_JOB_NAME}:${dataSource}`;
}

/**
 * Deletes expired sessions (`expires < now()` by the database clock) on the `purge.cron`
 * schedule, in batches of `purge.batchSize` rows, each batch its own short transaction.
 *
 * The job is a `CronJob` in `SchedulerRegistry` under `SESSION_PURGE_JOB_NAME`: the app's
 * registry when it imports `ScheduleModule.forRoot()`, else a private one (`schedulerRegistry`
 * below), so the schedule runs either way and the app's own jobs are not explored twice.
 * It stops on application shutdown, after letting a running batch finish.
 *
 * Many instances on one database: every batch first takes a transaction-scoped advisory
 * lock; an instance that cannot get it stops its run and leaves the work to the holder.
 * @publicApi
 */
@Injectable()
export class SessionPurgeService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('SessionPurgeService');

  /** The registry holding the purge job: the app's `SchedulerRegistry`, or a private one. */
  readonly schedulerRegistry: SchedulerRegistry;

  private job: CronJob | null = null;
  private running: Promise<number> | null = null;
  private stopping = false;

  constructor(
    @Inject(SessionStore) private readonly store: SessionStore,
    @Inject(SESSION_OPTIONS) private readonly options: ResolvedSessionOptions,
    /** The name the job is registered under. */
    @Inject(SESSION_PURGE_JOB) readonly jobName: string,
    @Optional() @Inject(SchedulerRegistry) schedulerRegistry?: SchedulerRegistry,
  ) {
    this.schedulerRegistry = schedulerRegistry ?? new SchedulerRegistry();
  }

  /** Registers and starts the job once the data source is up (after migrations ran). */
  onApplicationBootstrap(): void {
    this.stopping = false;
    const { cron } = this.options.purge;
    if (cron === null || this.job) return;
    if (this.schedulerRegistry.doesExist('cron', this.jobName)) {
      throw new SessionConfigurationError(
        `a cron job named ${JSON.stringify(this.jobName)} is already registered. Two SessionModule instances ` +
          'on one data source would purge the same table twice: set `purge: false` on all but one.',
      );
    }
    const job = CronJob.from({
      cronTime: cron,
      // Failures are logged by purgeExpired; a tick must never throw into the timer.
      onTick: () =>
        this.purgeExpired().then(
          () => undefined,
          () => undefined,
        ),
      // A tick awaits its run (and `job.stop()` waits for it); overlapping ticks join it anyway.
      waitForCompletion: true,
      start: false,
    });
    this.schedulerRegistry.addCronJob(this.jobName, job);
    this.job = job;
    job.start();
  }

  /**
   * Stops the job before TypeORM closes the connection, and waits for a running purge
   * (which stops after its current batch) so no query hits a closed pool.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopping = true;
    const job = this.job;
    this.job = null;
    if (job) {
      // With the app's ScheduleModule the job may already be gone: it clears its registry first.
      if (
        this.schedulerRegistry.doesExist('cron', this.jobName) &&
        this.schedulerRegistry.getCronJob(this.jobName) === job
      ) {
        this.schedulerRegistry.deleteCronJob(this.jobName);
      } else {
        void job.stop();
      }
    }
    await this.running?.catch(() => undefined);
  }

  /**
   * Purges now and resolves to the number of rows deleted. Batches continue until one
   * finds fewer than `batchSize` expired rows, `maxDurationMs` passes, or another instance
   * holds the purge lock (then it resolves to what this run deleted, possibly 0).
   * A call while a run is in progress (scheduled or manual) joins that run and gets its count.
   * Works with `purge: false` too (default batch size, no time limit), for apps that
   * schedule it themselves. Rejects with the database error after logging it.
   */
  purgeExpired(): Promise<number> {
    this.running ??= this.run().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async run(): Promise<number> {
    const { batchSize, maxDurationMs } = this.options.purge;
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    let deleted = 0;
    let batches = 0;
    let after: string | null = null;
    let stoppedBecause = '';
    try {
      for (;;) {
        const batch = await this.store.purgeExpiredBatch(batchSize, after);
        batches++;
        deleted += batch.deleted;
        after = batch.lastExpires ?? after;
        if (!batch.locked) {
          stoppedBecause = '; another instance holds the purge lock, leaving the rest to it';
          break;
        }
        if (batch.found < batchSize) break;
        if (this.stopping) {
          stoppedBecause = '; stopped early for application shutdown';
          break;
        }
        if (maxDurationMs !== null && performance.now() - started >= maxDurationMs) {
          stoppedBecause = `; stopped at maxDurationMs (${maxDurationMs} ms), the next run continues`;
          break;
        }
      }
    } catch (error) {
      this.logger.error(
        `Purge of expired sessions failed after deleting ${deleted} in ${elapsed()} ms: ${describeDatabaseError(error)}`,
        error instanceof Error ? error.stack : undefined,
      );
      throw error;
    }
    this.logger.log(
      `Purged ${deleted} expired session${deleted === 1 ? '' : 's'} in ${elapsed()} ms (${batches} batch${batches === 1 ? '' : 'es'})${stoppedBecause}`,
    );
    return deleted;
  }
}
