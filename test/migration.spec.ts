import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { DataSource } from 'typeorm';
import request from 'supertest';
import {
  AddSessionAuthenticatedAt1770400000000,
  AddSessionCacheTrigger1770500000000,
  AddSessionDeviceBinding1770700000000,
  AddSessionDeviceInfo1770600000000,
  CreateSessionsTable1770095236000,
  Session,
  sessionMigrations,
} from '../src/index.js';
import { generateCookieValue } from '../src/session-token.js';
import { POSTGRES_DIRECT, TEST_DATABASES, type OpenDatabase } from './support/databases.js';
import { bootHttpApp, cookiePair, digestOf } from './support/http-app.js';
import { describeEachWhere } from './support/requirements.js';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');

describe.each(TEST_DATABASES)('the sessions migration on %s', (_label, database) => {
  let db: OpenDatabase;
  let dataSource: DataSource;

  beforeAll(async () => {
    db = await database.open();
    dataSource = await new DataSource({
      ...db.options,
      entities: [Session],
      migrations: sessionMigrations,
    }).initialize();
  });
  afterAll(async () => {
    await dataSource.destroy();
    await db.dispose();
  });

  it('are exported in order in sessionMigrations: the table, authenticated_at, the cache trigger, the device info, the device binding', () => {
    expect(sessionMigrations).toEqual([
      CreateSessionsTable1770095236000,
      AddSessionAuthenticatedAt1770400000000,
      AddSessionCacheTrigger1770500000000,
      AddSessionDeviceInfo1770600000000,
      AddSessionDeviceBinding1770700000000,
    ]);
  });

  it('creates the table with timestamptz columns, a primary key and its indexes, and agrees with the entity', async () => {
    await dataSource.runMigrations();
    const columns: { column_name: string; data_type: string; is_nullable: string; character_maximum_length: number }[] =
      await dataSource.query(
        `SELECT column_name, data_type, is_nullable, character_maximum_length FROM information_schema.columns
         WHERE table_name = 'sessions' ORDER BY ordinal_position`,
      );
    expect(columns).toEqual([
      { column_name: 'id', data_type: 'character varying', is_nullable: 'NO', character_maximum_length: 255 },
      { column_name: 'user', data_type: 'character varying', is_nullable: 'NO', character_maximum_length: 255 },
      {
        column_name: 'created',
        data_type: 'timestamp with time zone',
        is_nullable: 'NO',
        character_maximum_length: null,
      },
      {
        column_name: 'expires',
        data_type: 'timestamp with time zone',
        is_nullable: 'NO',
        character_maximum_length: null,
      },
      {
        column_name: 'authenticated_at',
        data_type: 'timestamp with time zone',
        is_nullable: 'YES',
        character_maximum_length: null,
      },
      { column_name: 'user_agent', data_type: 'character varying', is_nullable: 'YES', character_maximum_length: 512 },
      { column_name: 'ip', data_type: 'character varying', is_nullable: 'YES', character_maximum_length: 64 },
      {
        column_name: 'last_seen',
        data_type: 'timestamp with time zone',
        is_nullable: 'YES',
        character_maximum_length: null,
      },
      { column_name: 'device_key', data_type: 'jsonb', is_nullable: 'YES', character_maximum_length: null },
      {
        column_name: 'device_session_id',
        data_type: 'character varying',
        is_nullable: 'YES',
        character_maximum_length: 64,
      },
      { column_name: 'bound_cookie', data_type: 'character varying', is_nullable: 'YES', character_maximum_length: 64 },
      {
        column_name: 'bound_cookie_expires',
        data_type: 'timestamp with time zone',
        is_nullable: 'YES',
        character_maximum_length: null,
      },
      {
        column_name: 'previous_bound_cookie',
        data_type: 'character varying',
        is_nullable: 'YES',
        character_maximum_length: 64,
      },
      {
        column_name: 'previous_bound_cookie_expires',
        data_type: 'timestamp with time zone',
        is_nullable: 'YES',
        character_maximum_length: null,
      },
      { column_name: 'device_challenges', data_type: 'jsonb', is_nullable: 'YES', character_maximum_length: null },
    ]);
    const indexes: { indexname: string; indexdef: string }[] = await dataSource.query(
      `SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'sessions' ORDER BY indexname`,
    );
    expect(indexes.map((index) => index.indexname)).toEqual([
      'IDX_sessions_expires',
      'IDX_sessions_user',
      'IDX_sessions_user_activity',
      'PK_sessions',
    ]);
    expect(indexes.find((index) => index.indexname === 'IDX_sessions_user_activity')!.indexdef).toContain(
      '("user", COALESCE(last_seen, created))',
    );
    expect(indexes.find((index) => index.indexname === 'IDX_sessions_user')!.indexdef).toContain('("user")');
    // The entity and the migration describe the same schema: synchronize would change nothing.
    const pending = await dataSource.driver.createSchemaBuilder().log();
    expect(pending.upQueries.map((query) => query.query)).toEqual([]);
  });

  it('the device-info migration is reverted by down to the previous schema, rows kept, and runs again', async () => {
    await dataSource.query(
      `INSERT INTO sessions (id, "user", created, expires, user_agent, ip, last_seen)
       VALUES ('kept', 'u', now(), now() + interval '1 hour', 'UA', '203.0.113.1', now())`,
    );
    await dataSource.undoLastMigration(); // the device binding
    await dataSource.undoLastMigration();
    const columns: { column_name: string }[] = await dataSource.query(
      `SELECT column_name FROM information_schema.columns WHERE table_name = 'sessions' ORDER BY ordinal_position`,
    );
    expect(columns.map((column) => column.column_name)).toEqual([
      'id',
      'user',
      'created',
      'expires',
      'authenticated_at',
    ]);
    const [{ count }] = await dataSource.query(
      `SELECT count(*)::int AS count FROM pg_indexes WHERE tablename = 'sessions'`,
    );
    expect(count).toBe(3);
    expect(await dataSource.query(`SELECT id, "user" FROM sessions`)).toEqual([{ id: 'kept', user: 'u' }]);
    await dataSource.runMigrations();
    expect(await dataSource.query(`SELECT user_agent, ip, last_seen FROM sessions`)).toEqual([
      { user_agent: null, ip: null, last_seen: null },
    ]);
    await dataSource.query(`DELETE FROM sessions`);
  });

  it('is reverted by down, leaving no table behind', async () => {
    for (let left = sessionMigrations.length; left > 0; left--) await dataSource.undoLastMigration();
    const [{ exists }] = await dataSource.query(`SELECT to_regclass('sessions') IS NOT NULL AS exists`);
    expect(exists).toBe(false);
    await dataSource.runMigrations();
    const [{ again }] = await dataSource.query(`SELECT to_regclass('sessions') IS NOT NULL AS again`);
    expect(again).toBe(true);
  });
});

describe.each(TEST_DATABASES)('the cache trigger migration on %s, as an upgrade', (_label, database) => {
  let db: OpenDatabase;
  let dataSource: DataSource;
  let previous: DataSource;
  const triggers = async () =>
    (
      await dataSource.query(
        `SELECT tgname FROM pg_trigger WHERE tgrelid = 'sessions'::regclass AND NOT tgisinternal ORDER BY tgname`,
      )
    ).map((row: { tgname: string }) => row.tgname);

  beforeAll(async () => {
    db = await database.open();
    // The schema as the previous release left it, with sessions in it.
    previous = await new DataSource({
      ...db.options,
      entities: [Session],
      migrations: [CreateSessionsTable1770095236000, AddSessionAuthenticatedAt1770400000000],
    }).initialize();
    await previous.runMigrations();
    await previous.query(
      `INSERT INTO sessions (id, "user", created, expires)
       SELECT 'row-' || g, 'user-' || g, now(), now() + interval '1 day' FROM generate_series(1, 50) g`,
    );
    // The release that added the trigger (kept beside the old one: closing PGlite's would empty it);
    // later migrations are tested as upgrades of their own.
    dataSource = await new DataSource({
      ...db.options,
      entities: [Session],
      migrations: sessionMigrations.slice(0, sessionMigrations.indexOf(AddSessionCacheTrigger1770500000000) + 1),
    }).initialize();
  });
  afterAll(async () => {
    await dataSource.destroy();
    if (previous.isInitialized) await previous.destroy();
    await db.dispose();
  });

  it('installs the UPDATE, DELETE and TRUNCATE triggers, keeps every row, and reverts cleanly', async () => {
    await dataSource.runMigrations();
    expect(await triggers()).toEqual([
      'nts_session_cache_delete',
      'nts_session_cache_truncate',
      'nts_session_cache_update',
    ]);
    expect(await dataSource.query('SELECT count(*)::int AS n FROM sessions')).toEqual([{ n: 50 }]);
    // Statement-level, with the old rows as a transition table.
    const [{ definition }] = await dataSource.query(
      `SELECT pg_get_triggerdef(oid) AS definition FROM pg_trigger WHERE tgname = 'nts_session_cache_delete'`,
    );
    expect(definition).toMatch(/AFTER DELETE .* REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT/);
    // The rows still change as before (the trigger only notifies).
    await dataSource.query(`UPDATE sessions SET "user" = 'changed' WHERE id = 'row-1'`);
    await dataSource.query(`DELETE FROM sessions WHERE id = 'row-2'`);
    expect(await dataSource.query('SELECT count(*)::int AS n FROM sessions')).toEqual([{ n: 49 }]);
    await dataSource.undoLastMigration();
    expect(await triggers()).toEqual([]);
    const [{ functions }] = await dataSource.query(
      `SELECT count(*)::int AS functions FROM pg_proc WHERE proname LIKE 'nts_session_cache%'`,
    );
    expect(functions).toBe(0);
    expect(await dataSource.query('SELECT count(*)::int AS n FROM sessions')).toEqual([{ n: 49 }]);
    await dataSource.runMigrations();
    expect(await triggers()).toHaveLength(3);
  });
});

describe.each(TEST_DATABASES)('the authenticated_at migration as an upgrade on %s', (_label, database) => {
  let db: OpenDatabase;
  let dataSource: DataSource;

  beforeAll(async () => {
    db = await database.open();
    dataSource = await new DataSource({
      ...db.options,
      entities: [Session],
      // The release that brought authenticated_at: the cache trigger after it has an upgrade test of its own.
      migrations: [CreateSessionsTable1770095236000, AddSessionAuthenticatedAt1770400000000],
    }).initialize();
  });
  afterAll(async () => {
    await dataSource.destroy();
    await db.dispose();
  });

  const columnsOf = async () =>
    (
      await dataSource.query(
        `SELECT column_name FROM information_schema.columns WHERE table_name = 'sessions' ORDER BY ordinal_position`,
      )
    ).map((column: { column_name: string }) => column.column_name);

  it('fills authenticated_at from created for the sessions already there, and down gives them back untouched', async () => {
    await dataSource.runMigrations({ transaction: 'each' });
    await dataSource.undoLastMigration(); // back to the previous release's schema (its one migration)
    expect(await columnsOf()).toEqual(['id', 'user', 'created', 'expires']);
    await dataSource.query(
      `INSERT INTO sessions (id, "user", created, expires) VALUES
         ('a', 'alice', now() - interval '3 days', now() + interval '1 day'),
         ('b', 'bob', '2026-01-02T03:04:05.678Z', '2027-01-01T00:00:00Z')`,
    );
    const rows = `SELECT id, "user", created, expires FROM sessions ORDER BY id`;
    const before = await dataSource.query(rows);

    const applied = await dataSource.runMigrations();
    expect(applied.map((migration) => migration.name)).toEqual(['AddSessionAuthenticatedAt1770400000000']);
    expect(await dataSource.query(`SELECT id, authenticated_at = created AS filled FROM sessions ORDER BY id`)).toEqual(
      [
        { id: 'a', filled: true },
        { id: 'b', filled: true },
      ],
    );
    expect(await dataSource.query(rows)).toEqual(before);
    // The package reads them as they were logged in at creation (read in SQL: the entity also has
    // the device columns, which a later migration adds).
    const [{ authenticatedAt }] = await dataSource.query(
      `SELECT authenticated_at AS "authenticatedAt" FROM sessions WHERE id = 'b'`,
    );
    expect(new Date(authenticatedAt).toISOString()).toBe('2026-01-02T03:04:05.678Z');
    // The entity agrees with the upgraded schema on this column (later migrations' columns aside).
    const pending = await dataSource.driver.createSchemaBuilder().log();
    expect(pending.upQueries.map((query) => query.query).filter((query) => query.includes('authenticated_at'))).toEqual(
      [],
    );

    await dataSource.undoLastMigration();
    expect(await columnsOf()).toEqual(['id', 'user', 'created', 'expires']);
    expect(await dataSource.query(rows)).toEqual(before);
    await dataSource.runMigrations();
    expect(await columnsOf()).toEqual(['id', 'user', 'created', 'expires', 'authenticated_at']);
  });
});

describe.each(TEST_DATABASES)('the device-binding migration as an upgrade on %s', (_label, database) => {
  let db: OpenDatabase;
  let dataSource: DataSource;

  beforeAll(async () => {
    db = await database.open();
    dataSource = await new DataSource({
      ...db.options,
      entities: [Session],
      migrations: sessionMigrations,
    }).initialize();
  });
  afterAll(async () => {
    await dataSource.destroy();
    await db.dispose();
  });

  const columnsOf = async (): Promise<string[]> =>
    (
      await dataSource.query(
        `SELECT column_name FROM information_schema.columns WHERE table_name = 'sessions' ORDER BY ordinal_position`,
      )
    ).map((column: { column_name: string }) => column.column_name);

  it('adds the binding columns to sessions already there (read as unbound), and down drops them keeping every session', async () => {
    await dataSource.runMigrations({ transaction: 'each' });
    await dataSource.undoLastMigration(); // the release before: every migration up to the device info
    const previousColumns = ['id', 'user', 'created', 'expires', 'authenticated_at', 'user_agent', 'ip', 'last_seen'];
    expect(await columnsOf()).toEqual(previousColumns);
    await dataSource.query(
      `INSERT INTO sessions (id, "user", created, expires, authenticated_at, user_agent, ip, last_seen) VALUES
         ('a', 'alice', now(), now() + interval '1 day', now(), 'UA', '203.0.113.9', now()),
         ('b', 'bob', '2026-01-02T03:04:05.678Z', '2027-01-01T00:00:00Z', NULL, NULL, NULL, NULL)`,
    );
    const rows = `SELECT ${previousColumns.map((column) => `"${column}"`).join(', ')} FROM sessions ORDER BY id`;
    const before = await dataSource.query(rows);

    const applied = await dataSource.runMigrations();
    expect(applied.map((migration) => migration.name)).toEqual(['AddSessionDeviceBinding1770700000000']);
    expect(await dataSource.query(rows)).toEqual(before);
    const unbound = {
      device_key: null,
      device_session_id: null,
      bound_cookie: null,
      bound_cookie_expires: null,
      previous_bound_cookie: null,
      previous_bound_cookie_expires: null,
      device_challenges: null,
    };
    expect(
      await dataSource.query(
        `SELECT device_key, device_session_id, bound_cookie, bound_cookie_expires, previous_bound_cookie,
                previous_bound_cookie_expires, device_challenges FROM sessions ORDER BY id`,
      ),
    ).toEqual([unbound, unbound]);
    const pending = await dataSource.driver.createSchemaBuilder().log();
    expect(pending.upQueries.map((query) => query.query)).toEqual([]);

    // A session bound meanwhile: down drops its binding and keeps it (the previous release
    // opens it with its cookie alone), and the migration runs again.
    await dataSource.query(
      `UPDATE sessions SET device_key = '{"kty":"EC","crv":"P-256","x":"x","y":"y"}', device_session_id = 's',
              bound_cookie = repeat('0', 64), bound_cookie_expires = now() + interval '1 minute',
              device_challenges = '[{"value":"c","expires":0}]' WHERE id = 'a'`,
    );
    await dataSource.undoLastMigration();
    expect(await columnsOf()).toEqual(previousColumns);
    expect(await dataSource.query(rows)).toEqual(before);
    await dataSource.runMigrations();
    expect(await dataSource.query(`SELECT count(*)::int AS bound FROM sessions WHERE device_key IS NOT NULL`)).toEqual([
      { bound: 0 },
    ]);
  });
});

describeEachWhere(POSTGRES_DIRECT, 'postgres', 'the TypeORM CLI scripts on %s', (_label, database) => {
  let db: OpenDatabase;
  const npm = (script: string) =>
    run('npm', ['run', '--silent', script], {
      cwd: root,
      env: { ...process.env, NODE_OPTIONS: '', DATABASE_URL: db.url! },
    }).then(({ stdout }) => stdout);

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(() => db.dispose());

  it('run, show, schema:log and revert work on a fresh database', async () => {
    expect(await npm('migration:show')).toContain('[ ] CreateSessionsTable1770095236000');
    const ran = await npm('migration:run');
    for (const Migration of sessionMigrations) {
      expect(ran).toContain(`${new Migration().name} has been executed successfully`);
    }
    expect(await npm('migration:show')).toContain('[X] 4 AddSessionDeviceInfo1770600000000');
    expect(await npm('migration:show')).toContain('[X] 5 AddSessionDeviceBinding1770700000000');
    expect(await npm('schema:log')).toContain('Your schema is up to date');
    // Newest first, one at a time; migration:show marks each as pending again.
    for (const Migration of [...sessionMigrations].reverse()) {
      expect(await npm('migration:revert')).toContain('reverted successfully');
      expect(await npm('migration:show')).toContain(`[ ] ${new Migration().name}`);
    }
    expect(await npm('migration:show')).toContain('[ ] CreateSessionsTable1770095236000');
  }, 300_000);

  it('upgrades a database of the previous release with sessions in it', async () => {
    // `migration:run` then reverting all but the first leaves exactly the table of the release before authenticated_at.
    await npm('migration:run');
    for (let left = sessionMigrations.length; left > 1; left--) await npm('migration:revert');
    const client = new pg.Client({ connectionString: db.url! });
    await client.connect();
    try {
      await client.query(
        `INSERT INTO sessions (id, "user", created, expires) VALUES ('old', 'alice', now() - interval '2 days', now() + interval '1 day')`,
      );
      expect(await npm('migration:run')).toContain(
        'AddSessionAuthenticatedAt1770400000000 has been executed successfully',
      );
      const { rows } = await client.query(`SELECT authenticated_at = created AS filled FROM sessions`);
      expect(rows).toEqual([{ filled: true }]);
      expect(await npm('schema:log')).toContain('Your schema is up to date');
    } finally {
      await client.end();
    }
  }, 300_000);

  it('upgrade with rows: old sessions authenticate with null device info, new logins carry it, revert keeps both', async () => {
    // A database of the release before the device columns (whatever the tests above left), holding a session.
    await npm('migration:run');
    expect(await npm('migration:revert')).toContain(
      'AddSessionDeviceBinding1770700000000 has been reverted successfully',
    );
    expect(await npm('migration:revert')).toContain('AddSessionDeviceInfo1770600000000 has been reverted successfully');
    const oldCookie = generateCookieValue();
    const before = await new DataSource({ ...db.options }).initialize();
    try {
      await before.query(
        `INSERT INTO sessions (id, "user", created, expires) VALUES ($1, 'old-user', now(), now() + interval '1 day')`,
        [digestOf(oldCookie)],
      );
    } finally {
      await before.destroy();
    }
    expect(await npm('migration:show')).toContain('[ ] AddSessionDeviceInfo1770600000000');
    expect(await npm('migration:run')).toContain('AddSessionDeviceInfo1770600000000 has been executed successfully');

    const http = await bootHttpApp('express', { database: db.options });
    let newCookie: string;
    try {
      const me = await request(http.server).get('/guarded/me').set('Cookie', `session_id=${oldCookie}`).expect(200);
      expect(me.body).toEqual({ user: { id: 'old-user' } });
      const [old] = await http.dataSource.query('SELECT user_agent, ip FROM sessions WHERE id = $1', [
        digestOf(oldCookie),
      ]);
      expect(old).toEqual({ user_agent: null, ip: null });
      const login = await request(http.server)
        .post('/auth/login')
        .set('User-Agent', 'Upgraded/1.0')
        .send({ userId: 'new-user' })
        .expect(200);
      newCookie = cookiePair(login).split('=')[1];
      const [fresh] = await http.dataSource.query('SELECT user_agent, ip, last_seen FROM sessions WHERE id = $1', [
        digestOf(newCookie),
      ]);
      expect(fresh.user_agent).toBe('Upgraded/1.0');
      expect(fresh.ip).toMatch(/127\.0\.0\.1$/);
      expect(fresh.last_seen).toBeInstanceOf(Date);
    } finally {
      await http.close();
    }

    expect(await npm('migration:revert')).toContain(
      'AddSessionDeviceBinding1770700000000 has been reverted successfully',
    );
    expect(await npm('migration:revert')).toContain('AddSessionDeviceInfo1770600000000 has been reverted successfully');
    // Both sessions are still live for the previous release, whose guard looks them up by
    // primary key reading only these columns.
    const after = await new DataSource({ ...db.options }).initialize();
    try {
      for (const [cookieValue, user] of [
        [oldCookie, 'old-user'],
        [newCookie, 'new-user'],
      ]) {
        const rows = await after.query(
          `SELECT "user", created, expires FROM sessions WHERE id = $1 AND expires > now()`,
          [digestOf(cookieValue)],
        );
        expect(rows).toEqual([expect.objectContaining({ user })]);
      }
    } finally {
      await after.destroy();
    }
  }, 300_000);
});
