import { randomBytes } from 'node:crypto';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { databaseErrorCode, describeDatabaseError, SessionConfigurationError } from '../errors.js';
import { DEFAULT_CACHE_HEARTBEAT_MS, SESSION_OPTIONS } from '../session.constants.js';
import type { ResolvedSessionOptions } from '../session.options.js';
import { SESSION_CACHE_MIGRATION, SessionInvalidationStore } from '../session-invalidation.store.js';
import { SessionStore } from '../session.store.js';
import { SessionCache } from './session-cache.js';

/** @internal The parts of a `pg.Client` the listener uses. */
interface ListenClient {
  connect(): Promise<void>;
  query(sql: string, parameters?: unknown[]): Promise<{ rows: unknown[] }>;
  end(): Promise<void>;
  on(event: 'notification', listener: (message: { channel: string; payload?: string }) => void): this;
  on(event: 'error' | 'end', listener: (error?: Error) => void): this;
  removeAllListeners(): this;
  connection?: { stream?: { destroy(): void } };
}

/** @internal The part of PGlite the listener uses (one in-process database: no heartbeat needed). */
interface PGliteLike {
  listen(channel: string, callback: (payload: string) => void): Promise<() => Promise<void>>;
}

/** First and longest wait before reconnecting a dropped listener. */
const RECONNECT_FIRST_MS = 100;
const RECONNECT_MAX_MS = 5000;

/**
 * @internal Keeps the cache correct: one dedicated connection LISTENs to the table's
 * invalidation channel and forgets what each NOTIFY names. The cache answers only while
 * this connection is subscribed and provably delivering: it NOTIFYs itself every
 * `heartbeatMs`, and when its own heartbeat has not come back within two intervals the
 * cache is bypassed and the connection replaced (listener connections can look alive and
 * deliver nothing). Reconnects with backoff; the cache is flushed when it is back, since
 * notifications sent meanwhile were lost. On PGlite (one process) it uses `pg.listen`.
 */
@Injectable()
export class SessionCacheListener implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('SessionCache');
  private readonly settings: ResolvedSessionOptions['cache'];
  private stopped = false;
  private client: ListenClient | null = null;
  private unlistenPGlite: (() => Promise<void>) | null = null;
  private channel = '';
  /** This listener's own heartbeat channel: other instances never see its heartbeats. */
  private readonly heartbeatChannel: string;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private failures = 0;
  private heartbeatsSent = 0;
  /** Called with each invalidation's ids, for tests and measurements. */
  onInvalidation: ((payload: string) => void) | null = null;

  constructor(
    @Inject(SESSION_OPTIONS) options: ResolvedSessionOptions,
    @Inject(SessionCache) private readonly cache: SessionCache,
    @Inject(SessionInvalidationStore) private readonly sql: SessionInvalidationStore,
    @Inject(SessionStore) private readonly store: SessionStore,
  ) {
    // `readFromReplicas` needs the invalidations even with the cache off: the listener runs for it too.
    const replicas = options.readFromReplicas;
    this.settings =
      options.cache ??
      (replicas && { maxEntries: 0, listenUrl: replicas.listenUrl, heartbeatMs: DEFAULT_CACHE_HEARTBEAT_MS });
    this.heartbeatChannel = `nts_session_cache_heartbeat_${randomBytes(8).toString('hex')}`;
  }

  /**
   * With the cache on, fails startup when the triggers are missing (the cache would never
   * hear of a revocation), then subscribes: the first attempt is awaited so a healthy app
   * starts with its cache working; a failed one is retried in the background.
   */
  async onApplicationBootstrap(): Promise<void> {
    if (this.settings === null) return;
    try {
      const { triggersInstalled } = await this.sql.describe(this.store.dataSource);
      if (!triggersInstalled) throw this.missingTriggers();
    } catch (error) {
      if (error instanceof SessionConfigurationError) throw error;
      // A missing table is the service's startup error; a database not reachable yet is retried.
      if (databaseErrorCode(error) === '42P01') return;
      this.logger.warn(`Could not check the cache's triggers at startup: ${describeDatabaseError(error)}`);
    }
    await this.connect();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    this.clearTimers();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.cache.unsubscribed();
    const client = this.client;
    this.client = null;
    if (client) await this.close(client);
    if (this.unlistenPGlite) await this.unlistenPGlite().catch(() => undefined);
  }

  /** The migration to run, in the words of the startup error. */
  private missingTriggers(): SessionConfigurationError {
    return new SessionConfigurationError(
      `cache (or readFromReplicas) is on but the invalidation triggers on ${this.store.tableName} are missing: run the package's ` +
        `${SESSION_CACHE_MIGRATION} migration (in \`sessionMigrations\`: \`typeorm migration:run\`), or turn cache off.`,
    );
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const driver = this.store.dataSource.driver as { postgres?: { Client?: unknown }; master?: unknown };
    const pgClient = driver.postgres?.Client;
    if (this.settings!.listenUrl === null && typeof pgClient !== 'function') return this.connectPGlite();
    if (typeof pgClient !== 'function') {
      throw new SessionConfigurationError('cache.listenUrl needs the `pg` driver (TypeORM postgres with pg).');
    }
    const client = new (pgClient as new (config: object) => ListenClient)(this.connectionConfig());
    this.client = client;
    // A server that accepts the connection and then stalls must not hold the listener (or startup) forever.
    const subscribeWithin = 2 * this.connectTimeoutMs();
    const stalled = setTimeout(() => this.drop(client, `not subscribed within ${subscribeWithin} ms`), subscribeWithin);
    stalled.unref();
    client.on('error', (error) => this.drop(client, `connection error: ${describeDatabaseError(error)}`));
    client.on('end', () => this.drop(client, 'connection ended'));
    client.on('notification', (message) => {
      if (message.channel === this.heartbeatChannel) this.watchdog?.refresh();
      else if (message.channel === this.channel) this.invalidate(message.payload ?? '*');
    });
    try {
      await client.connect();
      const sentAt = performance.now();
      const { channel, triggersInstalled, databaseNow } = await this.sql.describe(client);
      this.cache.observeClock(databaseNow, sentAt);
      if (!triggersInstalled) {
        this.logger.error(`${this.missingTriggers().message} The cache is bypassed until they exist.`);
        throw new Error('invalidation triggers missing');
      }
      this.channel = channel;
      await this.sql.listen(client, channel);
      await this.sql.listen(client, this.heartbeatChannel);
      if (client !== this.client) return;
      this.startHeartbeat(client);
      this.cache.subscribed();
      if (this.failures > 0) this.logger.log('Cache listener subscribed again; the cache was flushed.');
      this.failures = 0;
    } catch (error) {
      this.drop(client, `could not subscribe: ${describeDatabaseError(error)}`);
    } finally {
      clearTimeout(stalled);
    }
  }

  /** PGlite runs in this process: notifications cannot go missing, so no heartbeat. */
  private async connectPGlite(): Promise<void> {
    const pglite = await pgliteInstance();
    if (pglite === null) {
      throw new SessionConfigurationError(
        'cache needs the `pg` driver, or PGlite through typeorm-pglite; set cache.listenUrl to a PostgreSQL server otherwise.',
      );
    }
    const sentAt = performance.now();
    const { channel, databaseNow } = await this.sql.describe(this.store.dataSource);
    this.cache.observeClock(databaseNow, sentAt);
    this.channel = channel;
    this.unlistenPGlite = await pglite.listen(channel, (payload) => this.invalidate(payload));
    this.cache.subscribed();
  }

  private invalidate(payload: string): void {
    if (payload === '*') this.cache.flush();
    else this.cache.invalidate(payload.split(' '));
    this.onInvalidation?.(payload);
  }

  private startHeartbeat(client: ListenClient): void {
    const { heartbeatMs } = this.settings!;
    this.watchdog = setTimeout(
      () =>
        this.drop(
          client,
          `its own heartbeat did not come back within ${2 * heartbeatMs} ms; behind PgBouncer in transaction ` +
            'mode, set cache.listenUrl to the server itself',
        ),
      2 * heartbeatMs,
    );
    this.watchdog.unref();
    this.heartbeatTimer = setInterval(() => {
      const sentAt = performance.now();
      this.sql
        .heartbeat(client, this.heartbeatChannel, String(++this.heartbeatsSent))
        .then((databaseNow) => this.cache.observeClock(databaseNow, sentAt))
        .catch(() => undefined); // a failed connection reports itself through 'error'/'end'
    }, heartbeatMs);
    this.heartbeatTimer.unref();
  }

  /** Bypasses the cache at once, closes `client` and reconnects after a backoff. */
  private drop(client: ListenClient, reason: string): void {
    if (client !== this.client) return;
    this.client = null;
    this.cache.unsubscribed();
    this.clearTimers();
    void this.close(client);
    if (this.stopped) return;
    this.failures++;
    const wait = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** (this.failures - 1));
    this.logger.warn(`Cache listener down (${reason}): the cache is bypassed; reconnecting in ${wait} ms.`);
    this.reconnectTimer = setTimeout(() => void this.connect(), wait * (0.75 + Math.random() / 2));
    this.reconnectTimer.unref();
  }

  private clearTimers(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.watchdog) clearTimeout(this.watchdog);
    this.heartbeatTimer = this.watchdog = null;
  }

  /** Ends a connection without waiting on a peer that may never answer (a black-holed socket). */
  private async close(client: ListenClient): Promise<void> {
    client.removeAllListeners();
    client.on('error', () => undefined);
    const ended = client.end().catch(() => undefined);
    const timeout = new Promise((resolve) => setTimeout(resolve, 1000).unref());
    await Promise.race([ended, timeout]);
    client.connection?.stream?.destroy();
  }

  /**
   * The listener's connection: `listenUrl`, or the data source's own options (its primary
   * with replication), as TypeORM builds its pool from them.
   */
  private connectTimeoutMs(): number {
    return Math.max(2000, 2 * this.settings!.heartbeatMs);
  }

  private connectionConfig(): object {
    const { listenUrl } = this.settings!;
    const connectionTimeoutMillis = this.connectTimeoutMs();
    const applicationName = (this.store.dataSource.options as { applicationName?: string }).applicationName;
    const application_name = `${applicationName ?? 'nestjs-typeorm-session'} cache listener`;
    if (listenUrl !== null) {
      return { connectionString: listenUrl, application_name, connectionTimeoutMillis, keepAlive: true };
    }
    const options = this.store.dataSource.options as {
      url?: string;
      host?: string;
      port?: number;
      username?: string;
      password?: unknown;
      database?: string;
      ssl?: unknown;
      extra?: object;
      applicationName?: string;
      replication?: { master: Record<string, unknown> };
    };
    const credentials = (options.replication?.master ?? options) as typeof options;
    return {
      ...options.extra,
      connectionString: credentials.url,
      host: credentials.host,
      port: credentials.port,
      user: credentials.username,
      password: credentials.password,
      database: credentials.database,
      ssl: credentials.ssl ?? options.ssl,
      application_name,
      connectionTimeoutMillis,
      keepAlive: true,
    };
  }
}

/** The PGlite instance typeorm-pglite gives the data source, or null without typeorm-pglite. */
async function pgliteInstance(): Promise<PGliteLike | null> {
  try {
    const { getPGliteInstance } = (await import('typeorm-pglite')) as {
      getPGliteInstance: () => Promise<PGliteLike>;
    };
    return await getPGliteInstance();
  } catch {
    return null;
  }
}
