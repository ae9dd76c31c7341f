import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuthGuard, Session, SessionModule, type SessionModuleOptions, SessionPurgeService } from '../../src/index.js';
import { meController } from './me.controller.js';
import { serve } from './serve.js';

/**
 * App 3: this package's `AuthGuard` with default options, on the app's TypeORM
 * connection (default pool of 10). `BENCH_SESSION_OPTIONS` (JSON) overrides options
 * only for `bench:purge`, which turns the purge cron off to decide itself when
 * `purgeExpired()` runs (same batch size and no time limit, as by default).
 */
const sessionOptions: SessionModuleOptions = JSON.parse(process.env.BENCH_SESSION_OPTIONS ?? '{}');

@Module({
  imports: [
    TypeOrmModule.forRoot({ type: 'postgres', url: process.env.DATABASE_URL, entities: [Session] }),
    SessionModule.forRoot(sessionOptions),
  ],
  controllers: [meController(AuthGuard)],
})
class PackageGuardApp {}

await serve(PackageGuardApp, {
  tasks: {
    // Timed here, in the app, where the purge runs in production.
    purge: async (app) => {
      const started = performance.now();
      const deleted = await app.get(SessionPurgeService).purgeExpired();
      return { deleted, ms: performance.now() - started };
    },
  },
});
