// The public API of nestjs-typeorm-session, and nothing else.
export { SessionModule } from './session.module.js';
export type {
  SessionCacheOptions,
  SessionCookieOptions,
  SessionCrossOriginOptions,
  SessionDeviceBindingOptions,
  SessionDeviceInfoOptions,
  SessionModuleAsyncOptions,
  SessionModuleExtras,
  SessionModuleForRootOptions,
  SessionModuleOptions,
  SessionPurgeOptions,
  SessionReplicaOptions,
} from './session.module-definition.js';
export { SESSION_MODULE_OPTIONS } from './session.module-definition.js';
export { Session } from './session.entity.js';
export { SessionService } from './session.service.js';
export { AuthGuard } from './http/auth.guard.js';
export { SessionCookies } from './http/session-cookies.js';
export type { SessionCookieResponse } from './http/session-cookies.js';
export {
  CURRENT_SESSION_KEY,
  CurrentSession,
  CurrentUser,
  NoSessionCache,
  Public,
  RequireRecentLogin,
  SkipCrossOriginCheck,
} from './http/session.decorators.js';
export {
  CROSS_ORIGIN_REQUEST,
  CrossOriginRequestException,
  RECENT_LOGIN_REQUIRED,
  RecentLoginRequiredException,
} from './http/session.exceptions.js';
export type { CrossOriginReason } from './http/cross-origin.js';
export type { SessionRequest } from './http/session.decorators.js';
export { SessionPurgeService } from './session-purge.service.js';
export type { IssuedSession, SessionValidation } from './session.service.js';
export type { SessionDevice } from './session-device.js';
export {
  AddSessionAuthenticatedAt1770400000000,
  AddSessionCacheTrigger1770500000000,
  AddSessionDeviceBinding1770700000000,
  AddSessionDeviceInfo1770600000000,
  CreateSessionsTable1770095236000,
  sessionMigrations,
} from './migrations/index.js';
export { DuplicateSessionError, InvalidSessionError, SessionConfigurationError } from './errors.js';
export {
  DEFAULT_ACTIVITY_INTERVAL_MS,
  DEFAULT_CACHE_HEARTBEAT_MS,
  DEFAULT_CACHE_MAX_ENTRIES,
  DEFAULT_COOKIE_NAME,
  DEFAULT_PURGE_BATCH_SIZE,
  DEFAULT_PURGE_CRON,
  DEFAULT_SESSION_TTL_MS,
  SESSION_PURGE_JOB_NAME,
} from './session.constants.js';
