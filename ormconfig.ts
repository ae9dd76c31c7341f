// The DataSource the TypeORM CLI uses: `npm run migration:run` / `migration:revert` /
// `migration:show` / `schema:log` against DATABASE_URL.
import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { Session, sessionMigrations } from './src/index.js';

export default new DataSource({
  type: 'postgres',
  url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  entities: [Session],
  migrations: sessionMigrations,
});
