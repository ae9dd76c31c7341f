import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { DataSource } from 'typeorm';
import { CreateSessionsTable1770095236000, Session, sessionMigrations } from '../src/index.js';
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

  it('is exported as the only entry of sessionMigrations', () => {
    expect(sessionMigrations).toEqual([CreateSessionsTable1770095236000]);
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
    const [{ exists }] = await dataSource.query(`SELECT to_regclass('sessions') IS NOT NULL AS exists`);
    expect(exists).toBe(false);
    await dataSource.runMigrations();
    const [{ again }] = await dataSource.query(`SELECT to_regclass('sessions') IS NOT NULL AS again`);
    expect(again).toBe(true);
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
    expect(await npm('migration:run')).toContain('CreateSessionsTable1770095236000 has been executed successfully');
    expect(await npm('migration:show')).toContain('[X]');
    expect(await npm('schema:log')).toContain('Your schema is up to date');
    expect(await npm('migration:revert')).toContain('reverted successfully');
    expect(await npm('migration:show')).toContain('[ ] CreateSessionsTable1770095236000');
  }, 120_000);
});
