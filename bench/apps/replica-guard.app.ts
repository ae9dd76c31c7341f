import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuthGuard, Session, SessionModule } from '../../src/index.js';
import { meController } from './me.controller.js';
import { serve } from './serve.js';

/**
 * `bench:replicas`' app: app 3 (default options) on a data source with one standby
 * (`replication: { master: DATABASE_URL, slaves: [STANDBY_URL] }`), with `readFromReplicas`
 * on or off as `READ_FROM_REPLICAS` says: the same connections either way, so the
 * difference is where the lookups run.
 */
const standbyUrl = process.env.STANDBY_URL;
if (!standbyUrl) throw new Error('STANDBY_URL is not set (bench:replicas sets it)');

@Module({
  imports: [
    TypeOrmModule.forRoot({
      type: 'postgres',
      replication: { master: { url: process.env.DATABASE_URL }, slaves: [{ url: standbyUrl }] },
      entities: [Session],
    }),
    SessionModule.forRoot({ readFromReplicas: process.env.READ_FROM_REPLICAS === 'true' }),
  ],
  controllers: [meController(AuthGuard)],
})
class ReplicaGuardApp {}

await serve(ReplicaGuardApp);
