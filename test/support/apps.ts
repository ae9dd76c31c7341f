import { Test, type TestingModule } from '@nestjs/testing';
import type { DynamicModule, ModuleMetadata, Type } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { DataSourceOptions } from 'typeorm';
import { Session, SessionModule, sessionMigrations, type SessionModuleForRootOptions } from '../../src/index.js';

/**
 * TypeORM options as a user writes them: the package's entity and migrations on
 * the app's connection, migrations run at startup.
 */
export function typeOrmRoot(database: DataSourceOptions, extra: Record<string, unknown> = {}): DynamicModule {
  return TypeOrmModule.forRoot({
    ...database,
    entities: [Session],
    migrations: sessionMigrations,
    migrationsRun: true,
    ...extra,
  } as DataSourceOptions);
}

/** Compiles a module that imports TypeORM and `SessionModule.forRoot(sessionOptions)`. */
export async function compileSessionModule(
  database: DataSourceOptions,
  sessionOptions: SessionModuleForRootOptions = {},
  metadata: ModuleMetadata & { controllers?: Type[] } = {},
): Promise<TestingModule> {
  return Test.createTestingModule({
    ...metadata,
    imports: [
      typeOrmRoot(database),
      SessionModule.forRoot({ purge: false, ...sessionOptions }),
      ...(metadata.imports ?? []),
    ],
  }).compile();
}
