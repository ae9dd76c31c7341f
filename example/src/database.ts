import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Session, sessionMigrations } from 'nestjs-typeorm-session';
import type { DataSourceOptions } from 'typeorm';
import { PGliteDriver } from 'typeorm-pglite';
import { CreateUsersTable1770200000000 } from './migrations/1770200000000-create-users-table.js';
import { User } from './user.entity.js';

/** Where PGlite keeps its files unless DEMO_DATA_DIR says otherwise: example/.data/pglite (git-ignored). */
export const DEFAULT_DATA_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../.data/pglite');

/** Which database the demo runs on, for the startup banner. */
export type DemoDatabase = { kind: 'postgres'; url: string } | { kind: 'pglite'; dataDir: string };

export function chooseDatabase(env: NodeJS.ProcessEnv = process.env): DemoDatabase {
  if (env.DATABASE_URL) return { kind: 'postgres', url: env.DATABASE_URL };
  return { kind: 'pglite', dataDir: resolve(env.DEMO_DATA_DIR || DEFAULT_DATA_DIR) };
}

/**
 * TypeORM options for the chosen database: the package's entity and migrations plus
 * the demo's users table, all migrated at startup.
 */
export function dataSourceOptions(database: DemoDatabase): DataSourceOptions {
  const common = {
    entities: [Session, User],
    migrations: [...sessionMigrations, CreateUsersTable1770200000000],
    migrationsRun: true,
  };
  if (database.kind === 'postgres') return { type: 'postgres', url: database.url, ...common };
  mkdirSync(database.dataDir, { recursive: true });
  // PGlite: PostgreSQL compiled to WebAssembly, in this process, persisted to dataDir.
  return { type: 'postgres', driver: new PGliteDriver({ dataDir: database.dataDir }).driver, ...common };
}

/** The database for the banner, without the password of a URL. */
export function describeDatabase(database: DemoDatabase): string {
  if (database.kind === 'pglite') return `PGlite (embedded) in ${database.dataDir}`;
  const url = new URL(database.url);
  if (url.password) url.password = '***';
  return `PostgreSQL at ${url.toString()}`;
}
