import { Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { TypeOrmModule } from '@nestjs/typeorm';
import { SessionModule } from 'nestjs-typeorm-session';
import { AuthController } from './auth.controller.js';
import { dataSourceOptions } from './data-source.js';

/**
 * The README's setup, except that migrations are not run at startup: the check runs
 * them with the app's own TypeORM CLI first. `ScheduleModule.forRoot()` puts the purge
 * job in the app's registry, so the installed @nestjs/schedule is exercised too.
 */
@Module({
  imports: [
    TypeOrmModule.forRoot(dataSourceOptions),
    ScheduleModule.forRoot(),
    SessionModule.forRoot({ globalGuard: true }),
  ],
  controllers: [AuthController],
})
export class AppModule {}
