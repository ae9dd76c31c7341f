import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { DataSource } from 'typeorm';
import {
  AddSessionAuthenticatedAt1770400000000,
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

  it('are exported in order in sessionMigrations', () => {
    expect(sessionMigrations).toEqual([CreateSessionsTable1770095236000, AddSessionAuthenticatedAt1770400000000]);
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
    await dataSource.undoLastMigration();
    await dataSource.undoLastMigration();
    const [{ exists }] = await dataSource.query(`SELECT to_regclass('sessions') IS NOT NULL AS exists`);
    expect(exists).toBe(false);
    await dataSource.runMigrations();
    const [{ again }] = await dataSource.query(`SELECT to_regclass('sessions') IS NOT NULL AS again`);
    expect(again).toBe(true);
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
      migrations: sessionMigrations,
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
    expect(ran).toContain('CreateSessionsTable1770095236000 has been executed successfully');
    expect(ran).toContain('AddSessionAuthenticatedAt1770400000000 has been executed successfully');
    expect(await npm('migration:show')).toMatch(/\[X\] \d+ CreateSessionsTable1770095236000/);
    expect(await npm('schema:log')).toContain('Your schema is up to date');
    // Revert goes one migration back: to the previous release's schema.
    expect(await npm('migration:revert')).toContain('reverted successfully');
    const show = await npm('migration:show');
    expect(show).toMatch(/\[X\] \d+ CreateSessionsTable1770095236000/);
    expect(show).toContain('[ ] AddSessionAuthenticatedAt1770400000000');
    expect(await npm('migration:revert')).toContain('reverted successfully');
    expect(await npm('migration:show')).toContain('[ ] CreateSessionsTable1770095236000');
  }, 120_000);

  it('upgrades a database of the previous release with sessions in it', async () => {
    // `migration:run` then one revert leaves exactly the previous release's table.
    await npm('migration:run');
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
