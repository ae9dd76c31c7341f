import { createParamDecorator, type ExecutionContext, SetMetadata } from '@nestjs/common';
import { httpExchange } from './http-exchange.js';
import { SessionConfigurationError } from '../errors.js';
import {
  NO_SESSION_CACHE_KEY,
  PUBLIC_ROUTE_KEY,
  RECENT_LOGIN_KEY,
  SKIP_CROSS_ORIGIN_CHECK_KEY,
} from '../session.constants.js';
import type { CrossOriginHeaders } from './cross-origin.js';
import type { Session } from '../session.entity.js';

/**
 * The request property under which `AuthGuard` stores the `Session` row it
 * validated. A symbol, not `request.session`, which express-session and
 * @fastify/session own; `Symbol.for` so two copies of the package still agree.
 * Read it with `@CurrentSession()` in handlers, or `request[CURRENT_SESSION_KEY]`
 * in interceptors and filters.
 * @publicApi
 */
export const CURRENT_SESSION_KEY: unique symbol = Symbol.for('nestjs-typeorm-session.session');

/** @internal A request as the guard and the cookie helper see it (Express or Fastify). */
export interface SessionRequest {
  headers: { cookie?: string | string[] } & CrossOriginHeaders;
  method?: string;
  url?: string;
  user?: unknown;
  [CURRENT_SESSION_KEY]?: Session;
}

/**
 * Exempts a handler or a whole controller from `AuthGuard` (meant for
 * `globalGuard: true`): the guard lets the request through without reading the
 * cookie, so `@CurrentUser()` is undefined there.
 * @publicApi
 */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(PUBLIC_ROUTE_KEY, true);

/**
 * With `cache` on, `AuthGuard` checks the session in the database on this handler or
 * controller, never from memory: for routes where even the milliseconds a revocation
 * takes to reach every instance matter (password change, payments). No effect with the
 * cache off (every request asks the database then).
 * @publicApi
 */
export const NoSessionCache = (): MethodDecorator & ClassDecorator => SetMetadata(NO_SESSION_CACHE_KEY, true);

/**
 * Exempts a handler or a whole controller from `crossOriginProtection`, for the rare route a
 * page of another origin must be able to post to (a payment provider's form callback).
 * Like Go's `AddInsecureBypassPattern`: the route is open to cross-site request forgery again,
 * so keep it free of anything a forged request could abuse. The session check is unchanged.
 * @publicApi
 */
export const SkipCrossOriginCheck = (): MethodDecorator & ClassDecorator =>
  SetMetadata(SKIP_CROSS_ORIGIN_CHECK_KEY, true);

/**
 * Requires a login from the last `maxAgeMs` milliseconds on a handler or a whole controller
 * ("sudo mode" for changing an e-mail address, deleting an account). `AuthGuard` compares
 * `Session.authenticatedAt` with the database clock; when it is older it answers **403** with
 * `code: 'RECENT_LOGIN_REQUIRED'` (`RecentLoginRequiredException`): check the password again,
 * then call `SessionCookies.reauthenticate`. Checked by `AuthGuard` only (guarded routes; a
 * `@Public()` route ignores it), before `resolveUser`. Sliding expiry never makes a login recent.
 * @throws SessionConfigurationError at startup unless `maxAgeMs` is a positive whole number.
 * @publicApi
 */
export const RequireRecentLogin = (maxAgeMs: number): MethodDecorator & ClassDecorator => {
  if (typeof maxAgeMs !== 'number' || !Number.isSafeInteger(maxAgeMs) || maxAgeMs <= 0) {
    throw new SessionConfigurationError(
      `@RequireRecentLogin(maxAgeMs) needs a positive whole number of milliseconds, e.g. 5 * 60_000, got ${String(maxAgeMs)}.`,
    );
  }
  return SetMetadata(RECENT_LOGIN_KEY, maxAgeMs);
};

/**
 * The user `AuthGuard` attached to the request: what `resolveUser` returned, or
 * `{ id: userId }` without it. Undefined on routes the guard did not check
 * (`@Public()` or unguarded).
 * @publicApi
 */
export const CurrentUser = createParamDecorator(
  (_data: unknown, context: ExecutionContext): unknown => httpExchange(context)?.request.user,
);

/**
 * The `Session` row `AuthGuard` validated for this request (its `id` is the digest of
 * the cookie value, never the value, in both `hashSessionIds` modes; `expires` reflects a sliding renewal).
 * Undefined on routes the guard did not check.
 * @publicApi
 */
export const CurrentSession = createParamDecorator(
  (_data: unknown, context: ExecutionContext): Session | undefined =>
    httpExchange(context)?.request[CURRENT_SESSION_KEY],
);
