import { Controller, Get, type INestApplication, Module, UseGuards } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { Server } from 'node:http';
import request from 'supertest';
import type { DataSource } from 'typeorm';
import {
  AuthGuard,
  SessionConfigurationError,
  SessionModule,
  SessionService,
  sessionMigrations,
} from '../../src/index.js';
import { typeOrmRoot } from '../support/apps.js';
import { TEST_DATABASES, type OpenDatabase } from '../support/databases.js';
import { CapturingLogger } from '../support/http-app.js';

/**
 * Case 4 of issue 7, missing table: an app started against a database where the
 * package's migration never ran does not start. It fails once, at startup, with a
 * `SessionConfigurationError` that names the fix, instead of starting and answering
 * every request with a raw "relation does not exist".
 */
@UseGuards(AuthGuard)
@Controller()
class GuardedController {
  @Get('me')
  me() {
    return { ok: true };
  }
}

/** Boots an app as users do (`NestFactory.create`), keeping the app so it can be closed even when init fails. */
async function startApp(db: OpenDatabase, typeorm: Record<string, unknown>, logger: CapturingLogger) {
  @Module({
    imports: [typeOrmRoot(db.options, typeorm), SessionModule.forRoot({ purge: false })],
    controllers: [GuardedController],
  })
  class AppModule {}
  const app: INestApplication = await NestFactory.create(AppModule, new ExpressAdapter(), {
    logger,
    abortOnError: false,
  });
  let failure: unknown = null;
  try {
    await app.init();
  } catch (error) {
    failure = error;
  }
  return { app, failure };
}

describe.each(TEST_DATABASES)('starting without the sessions migration on %s', (_label, database) => {
  let db: OpenDatabase;
  beforeEach(async () => {
    db = await database.open();
  });
  afterEach(() => db.dispose());

  it('fails at startup, once, with a SessionConfigurationError that names the migration, not a raw driver error', async () => {
    const logger = new CapturingLogger();
    const { app, failure } = await startApp(db, { migrations: [], migrationsRun: false }, logger);
    try {
      expect(failure).toBeInstanceOf(SessionConfigurationError);
      const message = (failure as Error).message;
      expect(message).toContain('"sessions" does not exist');
      expect(message).toContain('sessionMigrations');
      expect(message).toContain('migration:run');
      expect(message).toContain('migrationsRun: true');
      // Not the driver's words: the fix, once.
      expect(message).not.toMatch(/relation .* does not exist/);
      expect(logger.text()).not.toMatch(/relation .* does not exist/);
      expect(logger.lines.filter((line) => line.level === 'error')).toEqual([]);
    } finally {
      await app.close();
    }
  });

  it('names the schema-qualified table when the data source uses a schema', async () => {
    const logger = new CapturingLogger();
    const { app, failure } = await startApp(db, { migrations: [], migrationsRun: false, schema: 'auth' }, logger);
    try {
      expect(failure).toBeInstanceOf(SessionConfigurationError);
      expect((failure as Error).message).toContain('"auth"."sessions"');
      expect((failure as Error).message).toContain('sessionMigrations');
    } finally {
      await app.close();
    }
  });

  it('an upgrade whose newest migration has not run fails at startup naming the missing columns, not a 503 per request', async () => {
    const logger = new CapturingLogger();
    // The release before device binding: every migration but the newest.
    const previous = sessionMigrations.slice(0, -1);
    const { app, failure } = await startApp(db, { migrations: previous, migrationsRun: true }, logger);
    try {
      expect(failure).toBeInstanceOf(SessionConfigurationError);
      const message = (failure as Error).message;
      expect(message).toContain('"sessions" lacks columns device_key');
      expect(message).toContain('sessionMigrations');
      expect(message).toContain('migration:run');
      expect(message).not.toMatch(/column .* does not exist/);
    } finally {
      await app.close();
    }
  });

  it('starts, and serves, once the migration is in place', async () => {
    const logger = new CapturingLogger();
    const { app, failure } = await startApp(db, {}, logger);
    try {
      expect(failure).toBeNull();
      const dataSource = app.get<DataSource>(getDataSourceToken());
      expect(await dataSource.query(`SELECT to_regclass('sessions') IS NOT NULL AS present`)).toEqual([
        { present: true },
      ]);
      // It serves: the guard answers from the table, 401 without a session and 200 with one.
      const server = app.getHttpServer() as Server;
      await request(server).get('/me').expect(401);
      const cookieValue = await app.get(SessionService).createSessionForUser('alice');
      await request(server).get('/me').set('Cookie', `session_id=${cookieValue}`).expect(200, { ok: true });
      await request(server)
        .get('/me')
        .set('Cookie', 'session_id=' + 'Z'.repeat(43))
        .expect(401);
      expect(logger.lines.filter((line) => line.level === 'error')).toEqual([]);
    } finally {
      await app.close();
    }
  });
});
