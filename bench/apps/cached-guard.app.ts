import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuthGuard, Session, SessionModule } from '../../src/index.js';
import { meController } from './me.controller.js';
import { serve } from './serve.js';

/**
 * App 5: app 3 with `cache: true`, the package's in-process session cache (LISTEN/NOTIFY
 * invalidation, one listener connection besides the pool). After one lookup per session a
 * guarded request costs no query while the listener is subscribed.
 */
@Module({
  imports: [
    TypeOrmModule.forRoot({ type: 'postgres', url: process.env.DATABASE_URL, entities: [Session] }),
    SessionModule.forRoot({ cache: true }),
  ],
  controllers: [meController(AuthGuard)],
})
class CachedGuardApp {}

await serve(CachedGuardApp);
