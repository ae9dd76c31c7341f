import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { DataSource } from 'typeorm';
import {
  AddSessionAuthenticatedAt1770400000000,
  AddSessionCacheTrigger1770500000000,
  CreateSessionsTable1770095236000,
  Session,
  sessionMigrations,
} from '../src/index.js';
import { POSTGRES_DIRECT, TEST_DATABASES, type OpenDatabase } from './support/databases.js';
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

  it('are exported in order in sessionMigrations: the table, authenticated_at, the cache trigger', () => {
    expect(sessionMigrations).toEqual([
      CreateSessionsTable1770095236000,
      AddSessionAuthenticatedAt1770400000000,
      AddSessionCacheTrigger1770500000000,
    ]);
  });

  it('creates the table with timestamptz columns, a primary key and both indexes, and agrees with the entity', async () => {
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
    ]);
    const indexes: { indexname: string; indexdef: string }[] = await dataSource.query(
      `SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'sessions' ORDER BY indexname`,
    );
    expect(indexes.map((index) => index.indexname)).toEqual([
      'IDX_sessions_expires',
      'IDX_sessions_user',
      'PK_sessions',
    ]);
    expect(indexes.find((index) => index.indexname === 'IDX_sessions_user')!.indexdef).toContain('("user")');
    // The entity and the migration describe the same schema: synchronize would change nothing.
    const pending = await dataSource.driver.createSchemaBuilder().log();
    expect(pending.upQueries.map((query) => query.query)).toEqual([]);
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
    // The new release's data source (kept beside the old one: closing PGlite's would empty it).
    dataSource = await new DataSource({
      ...db.options,
      entities: [Session],
      migrations: sessionMigrations,
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
    // The package reads them as they were logged in at creation.
    const [session] = await dataSource.getRepository(Session).findBy({ id: 'b' });
    expect(session.authenticatedAt.toISOString()).toBe('2026-01-02T03:04:05.678Z');
    // The entity agrees with the upgraded schema.
    const pending = await dataSource.driver.createSchemaBuilder().log();
    expect(pending.upQueries.map((query) => query.query)).toEqual([]);

    await dataSource.undoLastMigration();
    expect(await columnsOf()).toEqual(['id', 'user', 'created', 'expires']);
    expect(await dataSource.query(rows)).toEqual(before);
    await dataSource.runMigrations();
    expect(await columnsOf()).toEqual(['id', 'user', 'created', 'expires', 'authenticated_at']);
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
    for (const name of [
      'CreateSessionsTable1770095236000',
      'AddSessionAuthenticatedAt1770400000000',
      'AddSessionCacheTrigger1770500000000',
    ]) {
      expect(ran).toContain(`${name} has been executed successfully`);
    }
    expect(await npm('migration:show')).toContain('[X] 3 AddSessionCacheTrigger1770500000000');
    expect(await npm('schema:log')).toContain('Your schema is up to date');
    // Each revert goes one migration back.
    expect(await npm('migration:revert')).toContain('reverted successfully');
    expect(await npm('migration:show')).toContain('[ ] AddSessionCacheTrigger1770500000000');
    expect(await npm('migration:revert')).toContain('reverted successfully');
    const show = await npm('migration:show');
    expect(show).toMatch(/\[X\] \d+ CreateSessionsTable1770095236000/);
    expect(show).toContain('[ ] AddSessionAuthenticatedAt1770400000000');
    expect(await npm('migration:revert')).toContain('reverted successfully');
    expect(await npm('migration:show')).toContain('[ ] CreateSessionsTable1770095236000');
  }, 120_000);

  it('upgrades a database of the previous release with sessions in it', async () => {
    // `migration:run` then two reverts leave exactly the table of the release before authenticated_at.
    await npm('migration:run');
    await npm('migration:revert');
    await npm('migration:revert');
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
  }, 120_000);
});
