// The app's DataSource, as the TypeORM CLI loads it (`typeorm migration:run -d dist/data-source.js`):
// the package's entity and migrations beside the app's own.
import 'reflect-metadata';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { Session, sessionMigrations } from 'nestjs-typeorm-session';

export const dataSourceOptions: DataSourceOptions = {
  type: 'postgres',
  url: process.env.DATABASE_URL,
  entities: [Session],
  migrations: [...sessionMigrations],
};

export default new DataSource(dataSourceOptions);
