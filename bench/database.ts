import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import pg from 'pg';
import { DataSource } from 'typeorm';
import { DEFAULT_COOKIE_NAME, DEFAULT_SESSION_TTL_MS, Session, sessionMigrations } from '../src/index.js';
import { EXPRESS_SESSION_COOKIE, EXPRESS_SESSION_SECRET } from './constants.js';

/** The `User-Agent` the seeded sessions carry (a desktop Chrome's, 111 bytes). */
const BENCH_USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36';

/** The sessions the load generator rotates over, as ready-made `Cookie` header values. */
export interface ValidSessions {
  /** `session_id=<cookie value>` for apps 2 and 3 (rows hold its SHA-256 digest). */
  packageCookies: string[];
  /** `connect.sid=<signed sid>` for app 4. */
  expressCookies: string[];
  /** The user id behind `packageCookies[i]` and `expressCookies[i]`. */
  users: string[];
}

/** Rows per INSERT … SELECT generate_series statement, so progress shows on big seeds. */
const SEED_CHUNK = 250_000;

/**
 * The bench's own database: the package's `sessions` table (created by the package's
 * migration, as users create it) and connect-pg-simple's `session` table (its own
 * table.sql), filled in bulk with rows in the exact shape each library stores.
 */
export class BenchDatabase {
  private constructor(
    readonly url: string,
    private readonly pool: pg.Pool,
    /** Holds the run's advisory lock on the server; drops the database at close when asked. */
    private readonly admin: pg.Client,
    private readonly name: string,
    private readonly dropOnClose: boolean,
  ) {}

  /**
   * Drops and recreates `name` on the server at `serverUrl`, then creates both tables.
   * A session advisory lock on the name, held until `close()`, keeps two runs on one
   * server (a CI smoke beside a full run) from dropping each other's database.
   */
  static async create(
    serverUrl: string,
    name: string,
    options: { dropOnClose?: boolean } = {},
  ): Promise<BenchDatabase> {
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ locked: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS locked', [
        `nestjs-typeorm-session bench ${name}`,
      ]);
      if (!rows[0].locked) {
        throw new Error(`another bench run is using database ${name} on this server: wait for it, or pass --database`);
      }
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.query(`CREATE DATABASE ${name}`);
    } catch (error) {
      await admin.end();
      throw error;
    }
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    const dataSource = new DataSource({
      type: 'postgres',
      url: url.toString(),
      entities: [Session],
      migrations: sessionMigrations,
    });
    await dataSource.initialize();
    await dataSource.runMigrations();
    await dataSource.destroy();
    const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
    // An idle connection cut by the server (the final DROP … WITH (FORCE)) must not crash the run.
    pool.on('error', () => undefined);
    const require = createRequire(import.meta.url);
    const tableSql = await readFile(require.resolve('connect-pg-simple/table.sql'), 'utf8');
    await pool.query(tableSql);
    return new BenchDatabase(url.toString(), pool, admin, name, options.dropOnClose ?? false);
  }

  /** The server's version string, for the report. */
  async serverVersion(): Promise<string> {
    const { rows } = await this.pool.query<{ server_version: string }>('SHOW server_version');
    return rows[0].server_version;
  }

  /**
   * Creates `count` live sessions with fresh random cookie values in both tables
   * and returns their cookies. They expire after the package's default ttl.
   */
  async addValidSessions(count: number): Promise<ValidSessions> {
    const valid: ValidSessions = { packageCookies: [], expressCookies: [], users: [] };
    const digests: string[] = [];
    const sids: string[] = [];
    const sessions: string[] = [];
    for (let i = 0; i < count; i++) {
      const user = `bench-user-${i}`;
      // What SessionService.createSessionForUser does: 256 random bits, base64url,
      // stored as the SHA-256 hex digest (the 200 check proves the guard agrees).
      const cookieValue = randomBytes(32).toString('base64url');
      digests.push(createHash('sha256').update(cookieValue).digest('hex'));
      valid.packageCookies.push(`${DEFAULT_COOKIE_NAME}=${cookieValue}`);
      // What express-session does: a 24-byte uid-safe sid, signed in the cookie with
      // cookie-signature's HMAC-SHA256, URI-encoded; the row holds its JSON `sess`.
      const sid = randomBytes(24).toString('base64url');
      sids.push(sid);
      const signature = createHmac('sha256', EXPRESS_SESSION_SECRET).update(sid).digest('base64').replace(/=+$/, '');
      valid.expressCookies.push(`${EXPRESS_SESSION_COOKIE}=${encodeURIComponent(`s:${sid}.${signature}`)}`);
      sessions.push(
        JSON.stringify({ cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' }, userId: user }),
      );
      valid.users.push(user);
    }
    await this.pool.query(
      // Device info as a login stores it: the rows the guard reads are as wide as in production.
      `INSERT INTO sessions (id, "user", created, expires, user_agent, ip, last_seen)
       SELECT id, "user", now(), now() + $3::float8 * interval '1 millisecond', $4, '203.0.113.7', now()
       FROM unnest($1::text[], $2::text[]) AS v(id, "user")`,
      [digests, valid.users, DEFAULT_SESSION_TTL_MS, BENCH_USER_AGENT],
    );
    await this.pool.query(
      `INSERT INTO session (sid, sess, expire)
       SELECT sid, sess::json, now() + interval '1 day' FROM unnest($1::text[], $2::text[]) AS v(sid, sess)`,
      [sids, sessions],
    );
    return valid;
  }

  /**
   * Adds `count` live filler sessions to `sessions` (created over the last 60 days,
   * in insertion order, as a real table fills) and, with `alsoExpressTable`, as many
   * to connect-pg-simple's `session`. Ids are SHA-256 digests, spread like real ones.
   */
  async addLiveFiller(count: number, alsoExpressTable: boolean, log: (line: string) => void): Promise<void> {
    await this.fill(count, log, 'live', (prefix, from, to) =>
      this.pool.query(
        `INSERT INTO sessions (id, "user", created, expires, user_agent, ip, last_seen)
         SELECT encode(sha256(convert_to($1 || g, 'UTF8')), 'hex'), 'user-' || (g / 3),
                c.created, c.created + interval '100 days', $5, '203.0.113.' || (g % 250), c.created
         FROM generate_series($2::int, $3::int) AS g,
              LATERAL (SELECT now() - interval '60 days' * (1 - g::float8 / $4) AS created) AS c`,
        [prefix, from, to, count, BENCH_USER_AGENT],
      ),
    );
    if (!alsoExpressTable) return;
    await this.fill(count, log, 'connect-pg-simple', (prefix, from, to) =>
      this.pool.query(
        `INSERT INTO session (sid, sess, expire)
         SELECT translate(substr(encode(sha256(convert_to($1 || g, 'UTF8')), 'base64'), 1, 32), '+/', '-_'),
                json_build_object('cookie', json_build_object('originalMaxAge', NULL, 'expires', NULL,
                                  'httpOnly', true, 'path', '/'), 'userId', 'user-' || (g / 3)),
                now() + interval '1 day'
         FROM generate_series($2::int, $3::int) AS g`,
        [prefix, from, to],
      ),
    );
  }

  /** Adds `count` sessions to `sessions` that expired over the last 30 days, oldest first. */
  async addExpired(count: number, log: (line: string) => void): Promise<void> {
    await this.fill(count, log, 'expired', (prefix, from, to) =>
      this.pool.query(
        `INSERT INTO sessions (id, "user", created, expires)
         SELECT encode(sha256(convert_to($1 || g, 'UTF8')), 'hex'), 'user-' || (g / 3),
                e.expires - interval '100 days', e.expires
         FROM generate_series($2::int, $3::int) AS g,
              LATERAL (SELECT now() - interval '1 minute' - interval '30 days' * (1 - g::float8 / $4) AS expires) AS e`,
        [prefix, from, to, count],
      ),
    );
  }

  /** Counts rows of `sessions`, split by the database clock. */
  async countSessions(): Promise<{ live: number; expired: number }> {
    const { rows } = await this.pool.query<{ live: number; expired: number }>(
      `SELECT count(*) FILTER (WHERE expires > now())::int AS live,
              count(*) FILTER (WHERE expires <= now())::int AS expired FROM sessions`,
    );
    return rows[0];
  }

  /**
   * VACUUM ANALYZE both tables: sets hint bits and the visibility map and refreshes
   * statistics, so no measured request pays for the seeding's leftovers.
   */
  async settle(): Promise<void> {
    await this.pool.query('VACUUM ANALYZE sessions');
    await this.pool.query('VACUUM ANALYZE session');
  }

  /**
   * Turns autovacuum off on both tables, for runs that `settle()` themselves before each
   * measurement: otherwise app 4's touch UPDATEs can trigger one during the next app's.
   */
  async disableAutovacuum(): Promise<void> {
    await this.pool.query('ALTER TABLE sessions SET (autovacuum_enabled = false)');
    await this.pool.query('ALTER TABLE session SET (autovacuum_enabled = false)');
  }

  /** Flushes dirty pages now, so no checkpoint triggered by earlier writes lands in a measurement. */
  async checkpoint(): Promise<void> {
    await this.pool.query('CHECKPOINT');
  }

  /** Closes the pool, drops the database if asked to, and releases the run's lock. */
  async close(): Promise<void> {
    await this.pool.end();
    try {
      if (this.dropOnClose) await this.admin.query(`DROP DATABASE IF EXISTS ${this.name} WITH (FORCE)`);
    } finally {
      await this.admin.end();
    }
  }

  private async fill(
    count: number,
    log: (line: string) => void,
    what: string,
    insert: (prefix: string, from: number, to: number) => Promise<unknown>,
  ): Promise<void> {
    // A fresh prefix per call keeps ids unique across calls.
    const prefix = `${randomBytes(8).toString('hex')}-`;
    const started = performance.now();
    for (let from = 1; from <= count; from += SEED_CHUNK) {
      await insert(prefix, from, Math.min(count, from + SEED_CHUNK - 1));
    }
    if (count >= SEED_CHUNK)
      log(`  seeded ${count.toLocaleString('en-US')} ${what} rows in ${secondsSince(started)} s`);
  }
}

function secondsSince(started: number): string {
  return ((performance.now() - started) / 1000).toFixed(1);
}
