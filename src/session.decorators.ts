import { createParamDecorator, type ExecutionContext, SetMetadata } from '@nestjs/common';
import { httpExchange } from './http-exchange.js';
import { NO_SESSION_CACHE_KEY, PUBLIC_ROUTE_KEY } from './session.constants.js';
import type { Session } from './session.entity.js';

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
  headers: { cookie?: string | string[] };
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
