import { DynamicModule, Inject, MiddlewareConsumer, Module, NestModule, Provider, RequestMethod } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { getDataSourceToken, TypeOrmModule } from '@nestjs/typeorm';
import { AuthGuard } from './http/auth.guard.js';
import { SessionCache } from './cache/session-cache.js';
import { SessionCacheListener } from './cache/session-cache.listener.js';
import { SessionCookies } from './http/session-cookies.js';
import { SessionPurgeService, sessionPurgeJobName } from './session-purge.service.js';
import { SESSION_DATA_SOURCE, SESSION_OPTIONS, SESSION_PURGE_JOB } from './session.constants.js';
import { Session } from './session.entity.js';
import {
  ConfigurableModuleClass,
  SESSION_MODULE_OPTIONS,
  type SessionModuleAsyncOptions,
  type SessionModuleExtras,
  type SessionModuleForRootOptions,
  type SessionModuleOptions,
} from './session.module-definition.js';
import { resolveSessionOptions } from './session.options.js';
import { SessionService } from './session.service.js';
import { SessionStore } from './session.store.js';
import { SessionInvalidationStore } from './session-invalidation.store.js';
import { SessionDeviceBindingStore } from './session-device-binding.store.js';
import { DeviceBinding } from './device-binding/device-binding.service.js';
import { DeviceRefreshMiddleware, DeviceRegistrationMiddleware } from './device-binding/device-binding.middleware.js';
import type { ResolvedSessionOptions } from './session.options.js';
import { RecentInvalidations } from './replicas/recent-invalidations.js';
import { ReplicaReads } from './replicas/replica-reads.js';
import { StandbyWatch } from './replicas/standby-watch.js';
import { SessionReplicaStore } from './session-replica.store.js';

/** Providers every instance of the module has, whatever its options. */
const SESSION_PROVIDERS: Provider[] = [
  {
    provide: SESSION_OPTIONS,
    inject: [SESSION_MODULE_OPTIONS],
    useFactory: (options: SessionModuleOptions) => resolveSessionOptions(options),
  },
  SessionStore,
  SessionInvalidationStore,
  SessionCache,
  SessionCacheListener,
  SessionService,
  AuthGuard,
  SessionCookies,
  SessionPurgeService,
  SessionDeviceBindingStore,
  DeviceBinding,
  // readFromReplicas (inert when off)
  SessionReplicaStore,
  RecentInvalidations,
  StandbyWatch,
  ReplicaReads,
];

/**
 * What the module makes injectable in the importing module. `SESSION_OPTIONS` too:
 * `@UseGuards(AuthGuard)` instantiates the guard in the controller's module, which
 * must be able to resolve every guard dependency (the token itself stays internal).
 */
const SESSION_EXPORTS = [SessionService, AuthGuard, SessionCookies, SessionPurgeService, SESSION_OPTIONS];

/**
 * Database-backed sessions on the app's existing TypeORM connection.
 *
 * ```ts
 * imports: [TypeOrmModule.forRoot({ ... }), SessionModule.forRoot({ ttl: 7 * 86_400_000 })]
 * ```
 * @publicApi
 */
@Module({ providers: SESSION_PROVIDERS, exports: SESSION_EXPORTS })
export class SessionModule extends ConfigurableModuleClass implements NestModule {
  constructor(@Inject(SESSION_OPTIONS) private readonly options: ResolvedSessionOptions) {
    super();
  }

  /** With `deviceBinding`, mounts the DBSC registration and refresh endpoints (POST) on their paths. */
  configure(consumer: MiddlewareConsumer): void {
    const binding = this.options.deviceBinding;
    if (binding === null) return;
    consumer
      .apply(DeviceRegistrationMiddleware)
      .forRoutes({ path: binding.registrationPath, method: RequestMethod.POST })
      .apply(DeviceRefreshMiddleware)
      .forRoutes({ path: binding.refreshPath, method: RequestMethod.POST });
  }

  static forRoot(options: SessionModuleForRootOptions = {}): DynamicModule {
    return applyExtras(super.forRoot(options), options);
  }

  static forRootAsync(options: SessionModuleAsyncOptions): DynamicModule {
    return applyExtras(super.forRootAsync(options), options);
  }
}

/**
 * The one place the extras shape the module: which data source it binds to, whether
 * it is global, whether `AuthGuard` guards every route. (`@Module` metadata and the dynamic module's fields are merged by Nest.)
 * The `forFeature` module is re-exported, so the importing module (every module, with
 * `isGlobal`) can `@InjectRepository(Session[, dataSource])` without registering `Session` again.
 */
function applyExtras(definition: DynamicModule, extras: SessionModuleExtras): DynamicModule {
  const sessionRepository = TypeOrmModule.forFeature([Session], extras.dataSource);
  return {
    ...definition,
    global: extras.isGlobal ?? false,
    imports: [...(definition.imports ?? []), sessionRepository],
    exports: [...(definition.exports ?? []), sessionRepository],
    providers: [
      ...(definition.providers ?? []),
      { provide: SESSION_DATA_SOURCE, useExisting: getDataSourceToken(extras.dataSource) },
      { provide: SESSION_PURGE_JOB, useValue: sessionPurgeJobName(extras.dataSource) },
      ...(extras.globalGuard ? [{ provide: APP_GUARD, useExisting: AuthGuard }] : []),
    ],
  };
}
