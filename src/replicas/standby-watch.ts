import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { describeDatabaseError, SessionConfigurationError } from '../errors.js';
import { SESSION_DATA_SOURCE, SESSION_OPTIONS } from '../session.constants.js';
import type { ResolvedSessionOptions } from '../session.options.js';
import { type PrimaryPosition, SessionReplicaStore } from '../session-replica.store.js';
import type { DriverPool } from '../session.store.js';
import { RecentInvalidations } from './recent-invalidations.js';

/** @internal One standby of `replication.slaves`, as the watch sees it. */
export interface Standby {
  /** `host:port`, for logs. */
  readonly label: string;
  readonly pool: DriverPool;
  /**
   * When (`performance.now()`) the newest primary position this standby has replayed was read:
   * everything committed before then is visible on it. -Infinity: none yet.
   */
  replayedSentAt: number;
  /** Down, erroring, slow or not a standby: not used until a check succeeds. */
  failing: string | null;
  /** Answers it served that were believed, and answers dropped for the primary's (for tests and the bench). */
  served: number;
  dropped: number;
}

/** Primary positions kept: enough to cover `maxLagMs` at one per interval, and some. */
const SAMPLES_KEPT = 256;

/**
 * @internal Measures each standby's replay lag, never assumes it: every `checkIntervalMs` it
 * reads the primary's WAL position (noting when it sent the query), then each standby's
 * replay position. A standby's lag at any moment is the age of the newest primary position
 * it has replayed, so a lag reading that stops coming in (primary or standby unreachable)
 * grows by itself until the standby is out of use. A standby is used while that lag is
 * within `maxLagMs` and the position was read after the listener's current subscription began
 * (so every commit it may not show was announced to a listener that was listening).
 */
@Injectable()
export class StandbyWatch implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('SessionReplicas');
  readonly standbys: Standby[] = [];
  private readonly settings: ResolvedSessionOptions['readFromReplicas'];
  private readonly primary: DriverPool | null = null;
  /** Primary positions, oldest first, with when each was sent. */
  private readonly samples: { lsn: bigint; sentAt: number }[] = [];
  /** The primary's clock minus `performance.now()` at the newest sample (never below the true offset). */
  private primaryOffset = Infinity;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private next = 0;

  constructor(
    @Inject(SESSION_OPTIONS) options: ResolvedSessionOptions,
    @Inject(SESSION_DATA_SOURCE) dataSource: DataSource,
    @Inject(SessionReplicaStore) private readonly sql: SessionReplicaStore,
    @Inject(RecentInvalidations) private readonly recent: RecentInvalidations,
  ) {
    this.settings = options.readFromReplicas;
    if (this.settings === null) return;
    const driver = dataSource.driver as { master?: Partial<DriverPool>; slaves?: DriverPool[] };
    if (typeof driver.master?.Client !== 'function') {
      throw new SessionConfigurationError(
        'readFromReplicas needs PostgreSQL streaming standbys through the `pg` driver; this data source ' +
          '(PGlite, or another driver) has none: remove readFromReplicas.',
      );
    }
    const slaves = (dataSource.options as { replication?: { slaves?: Record<string, unknown>[] } }).replication?.slaves;
    if (!slaves?.length || !driver.slaves?.length) {
      throw new SessionConfigurationError(
        'readFromReplicas is set but the data source has no standbys: give TypeORM ' +
          '`replication: { master: { url: … }, slaves: [{ url: … }] }` instead of `url`, or remove readFromReplicas.',
      );
    }
    this.primary = driver.master as DriverPool;
    this.standbys = driver.slaves.map((pool, index) => ({
      label: describeServer(slaves[index]),
      pool,
      replayedSentAt: -Infinity,
      failing: null,
      served: 0,
      dropped: 0,
    }));
  }

  /** Reads the lag once (a healthy app starts with its standbys measured), then every interval. */
  async onApplicationBootstrap(): Promise<void> {
    if (this.settings === null) return;
    await this.check();
    this.schedule();
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** A standby to ask now, in turn among the usable ones, or null (ask the primary). */
  pick(): Standby | null {
    const now = performance.now();
    for (let tried = 0; tried < this.standbys.length; tried++) {
      const standby = this.standbys[this.next++ % this.standbys.length];
      if (this.usable(standby, now)) return standby;
    }
    return null;
  }

  /**
   * Whether `standby`'s answers may be believed at `at`: not failing, its lag within
   * `maxLagMs`, and everything it may miss announced to the current subscription.
   */
  usable(standby: Standby, at: number): boolean {
    const since = this.recent.subscribedSince;
    return (
      standby.failing === null &&
      since !== null &&
      standby.replayedSentAt >= since &&
      at - standby.replayedSentAt <= this.settings!.maxLagMs
    );
  }

  /** The standby's lag as last measured, in ms (Infinity before any reading). */
  lagMs(standby: Standby): number {
    return performance.now() - standby.replayedSentAt;
  }

  /** The primary's clock now, as the newest sample gives it: never behind it (errs towards "expired"). */
  primaryNow(): number {
    return performance.now() + this.primaryOffset;
  }

  /** A read on `standby` failed or took too long: rest it until a check succeeds. */
  failed(standby: Standby, error: unknown): void {
    this.markFailing(standby, describeDatabaseError(error));
  }

  /** Resolves `work`, or rejects after `queryTimeoutMs`. */
  withinTimeout<T>(work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${this.settings!.queryTimeoutMs} ms`)),
        this.settings!.queryTimeoutMs,
      );
    });
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.check().finally(() => this.schedule()), this.settings!.checkIntervalMs);
    this.timer.unref();
  }

  /** One reading: the primary's position first, then every standby's replay position. */
  private async check(): Promise<void> {
    const sentAt = performance.now();
    let position: PrimaryPosition | null = null;
    try {
      position = await this.withinTimeout(this.sql.primaryPosition(this.primary!));
    } catch {
      // Primary unreachable: no new sample, so every standby's lag grows until it is out of use.
      // (Requests answer 503 meanwhile anyway: the primary is where every unsure answer goes.)
    }
    if (position !== null) {
      this.samples.push({ lsn: position.lsn, sentAt });
      if (this.samples.length > SAMPLES_KEPT) this.samples.shift();
      this.primaryOffset = position.databaseNow - sentAt;
    }
    await Promise.all(this.standbys.map((standby) => this.checkStandby(standby)));
  }

  private async checkStandby(standby: Standby): Promise<void> {
    let replayed: bigint | null;
    try {
      replayed = await this.withinTimeout(this.sql.replayPosition(standby.pool));
    } catch (error) {
      this.markFailing(standby, describeDatabaseError(error));
      return;
    }
    if (replayed === null) {
      this.markFailing(standby, 'it is not a standby (pg_last_wal_replay_lsn() is null: promoted?)');
      return;
    }
    for (let i = this.samples.length - 1; i >= 0; i--) {
      if (this.samples[i].lsn <= replayed) {
        standby.replayedSentAt = Math.max(standby.replayedSentAt, this.samples[i].sentAt);
        break;
      }
    }
    if (standby.failing !== null) {
      this.logger.log(`Standby ${standby.label} answers again; it is used while its lag is within the window.`);
      standby.failing = null;
    }
  }

  private markFailing(standby: Standby, reason: string): void {
    if (standby.failing === null) {
      this.logger.warn(
        `Standby ${standby.label} not used (${reason}): its reads go to the primary until a check succeeds.`,
      );
    }
    standby.failing = reason;
  }
}

/** `host:port` of a `replication.slaves` entry, never its password. */
function describeServer(credentials: Record<string, unknown> | undefined): string {
  try {
    if (typeof credentials?.url === 'string') {
      const url = new URL(credentials.url);
      return `${url.hostname}:${url.port || 5432}`;
    }
  } catch {
    // fall through
  }
  return `${String(credentials?.host ?? 'localhost')}:${String(credentials?.port ?? 5432)}`;
}
