import { type DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { SessionModule } from 'nestjs-typeorm-session';
import { AccountController } from './account.controller.js';
import { AuthController } from './auth.controller.js';
import { dataSourceOptions, type DemoDatabase } from './database.js';
import { ABSOLUTE_TIMEOUT_MS, PURGE_CRON, SESSION_TTL_MS } from './demo.settings.js';
import { ForbiddenPageFilter } from './forbidden-page.filter.js';
import { LoginRedirectFilter } from './login-redirect.filter.js';
import { UsersModule } from './users.module.js';
import { UsersService } from './users.service.js';

/** The demo: the package wired the way its README tells users to. */
@Module({})
export class AppModule {
  static forDatabase(database: DemoDatabase): DynamicModule {
    return {
      module: AppModule,
      imports: [
        TypeOrmModule.forRoot(dataSourceOptions(database)),
        UsersModule,
        // forRootAsync so that resolveUser can use an injected service.
        SessionModule.forRootAsync({
          globalGuard: true, // every route needs a session unless marked @Public()
          imports: [UsersModule],
          inject: [UsersService],
          useFactory: (users: UsersService) => ({
            resolveUser: (userId: string) => users.findById(userId), // request.user is the User row; null (deleted) → 401
            ttl: SESSION_TTL_MS,
            rolling: true,
            absoluteTimeout: ABSOLUTE_TIMEOUT_MS,
            // The demo serves plain http on localhost; behind TLS in production keep the default (Secure).
            cookie: { secure: process.env.NODE_ENV === 'production' },
            purge: { cron: PURGE_CRON },
            // crossOriginProtection is on by default: forms and fetches from other origins are refused (403).
            // DBSC: browsers that support it bind the session to a key in their security chip
            // (TPM); others ignore the offer. The module serves /dbsc/registration and /dbsc/refresh.
            deviceBinding: true,
          }),
        }),
      ],
      controllers: [AuthController, AccountController],
      providers: [
        { provide: APP_FILTER, useClass: LoginRedirectFilter },
        { provide: APP_FILTER, useClass: ForbiddenPageFilter },
      ],
    };
  }
}
