import {
  type CanActivate,
  type ExecutionContext,
  HttpException,
  Inject,
  Injectable,
  Logger,
  ServiceUnavailableException,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { type CrossOriginReason, crossOriginRefusal } from './cross-origin.js';
import { describeDatabaseError } from '../errors.js';
import { type HttpExchange, httpExchange } from './http-exchange.js';
import {
  NO_SESSION_CACHE_KEY,
  PUBLIC_ROUTE_KEY,
  RECENT_LOGIN_KEY,
  SESSION_OPTIONS,
  SKIP_CROSS_ORIGIN_CHECK_KEY,
} from '../session.constants.js';
import { CrossOriginRequestException, RecentLoginRequiredException } from './session.exceptions.js';
import { CURRENT_SESSION_KEY } from './session.decorators.js';
import type { ResolvedSessionOptions } from '../session.options.js';
import { SessionService, type SessionValidation } from '../session.service.js';
import { SessionCookies } from './session-cookies.js';
import { readSingleCookieValue } from './session-cookie-header.js';
import { carriesBoundCookie } from '../device-binding/bound-cookie.js';

/**
 * Lets a request through only with a live session cookie, and attaches the user
 * (`request.user`, `@CurrentUser()`) and the session (`@CurrentSession()`).
 * Use it with `@UseGuards(AuthGuard)`, or everywhere with `globalGuard: true`
 * (exempt routes with `@Public()`).
 *
 * - 401 `UnauthorizedException`: no cookie, an ambiguous one (sent twice with
 *   different values), malformed, unknown or expired (an expired session is
 *   deleted), or `resolveUser` returned a falsy value (null, undefined, false, 0,
 *   ''). The handler never runs.
 * - 503 `ServiceUnavailableException`: the session lookup failed (database down or
 *   erroring). Not a 401, which would make clients drop a session that is still
 *   valid. The cause is logged (never the cookie value), the body says nothing.
 * - `resolveUser` throwing: an `HttpException` it throws is answered as-is (say a
 *   403 for a banned user); any other error is a 503 like a session-store failure
 *   (typically the users table being unreachable), logged the same way.
 *
 * - 401 also for a device-bound session (`deviceBinding`) without an unexpired bound cookie of its own.
 * - 403 `CrossOriginRequestException` (`code: 'CROSS_ORIGIN_REQUEST'`): a state-changing
 *   request another origin made (`crossOriginProtection`, on by default). Checked first,
 *   before any query, on `@Public()` routes too unless `@SkipCrossOriginCheck()`.
 * - 403 `RecentLoginRequiredException` (`code: 'RECENT_LOGIN_REQUIRED'`): a live session on a
 *   `@RequireRecentLogin(maxAgeMs)` route whose last login is older than that.
 *
 * - GraphQL resolvers (over HTTP) are guarded the same way: the request is read from
 *   the GraphQL context (`req`, as Nest's Apollo driver puts it there).
 * - Calls with no HTTP request (RPC, WebSockets) are denied (`false`: Nest answers with
 *   the transport's own "Forbidden resource") unless `@Public()`.
 *
 * One primary-key query per request (none for a session the `cache` holds, except on
 * `@NoSessionCache()` routes); with `rolling`, a write at most once per
 * half-`ttl` per session, and then the cookie is refreshed on the response.
 * @publicApi
 */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly logger = new Logger('AuthGuard');
  private readonly cookieName: string;
  private readonly resolveUser: ResolvedSessionOptions['resolveUser'];
  private readonly crossOrigin: ResolvedSessionOptions['crossOriginProtection'];
  private readonly deviceBinding: ResolvedSessionOptions['deviceBinding'];
  /** Refusal reasons already logged: one line per reason, so forged requests cannot flood the log. */
  private readonly loggedRefusals = new Set<CrossOriginReason>();

  constructor(
    @Inject(SessionService) private readonly sessions: SessionService,
    @Inject(SessionCookies) private readonly cookies: SessionCookies,
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(SESSION_OPTIONS) options: ResolvedSessionOptions,
  ) {
    this.cookieName = options.cookieName;
    this.resolveUser = options.resolveUser;
    this.crossOrigin = options.crossOriginProtection;
    this.deviceBinding = options.deviceBinding;
  }

  /**
   * Synchronous when the answer needs no query (a session the cache holds, a malformed
   * cookie) and `resolveUser` returns a plain value: Nest then awaits nothing.
   */
  canActivate(context: ExecutionContext): boolean | Promise<boolean> {
    this.refuseCrossOrigin(context);
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE_KEY, [context.getHandler(), context.getClass()])) {
      return true;
    }
    const exchange = httpExchange(context);
    if (exchange === null) {
      // No HTTP request, so no cookie (RPC, WebSockets): deny, and Nest answers with the
      // transport's own "Forbidden resource". Authenticate those at connection time.
      return false;
    }
    const cookieValue = readSingleCookieValue(exchange.request.headers?.cookie, this.cookieName);
    if (cookieValue === undefined) throw new UnauthorizedException();

    const useCache = !this.reflector.getAllAndOverride<boolean>(NO_SESSION_CACHE_KEY, [
      context.getHandler(),
      context.getClass(),
    ]);
    const known = this.sessions.validateInMemory(cookieValue, useCache);
    if (known !== undefined) return this.admit(context, exchange, cookieValue, known);
    return this.validateThenAdmit(context, exchange, cookieValue, useCache);
  }

  private async validateThenAdmit(
    context: ExecutionContext,
    exchange: HttpExchange,
    cookieValue: string,
    useCache: boolean,
  ): Promise<boolean> {
    let validation: SessionValidation;
    try {
      validation = await this.sessions.validate(cookieValue, { useCache });
    } catch (error) {
      this.logger.error(`Session lookup failed, answering 503: ${describeDatabaseError(error)}`);
      throw new ServiceUnavailableException();
    }
    return this.admit(context, exchange, cookieValue, validation);
  }

  /** Lets the request in with the session `validation` found, or throws the answer. */
  private admit(
    context: ExecutionContext,
    { request, response }: HttpExchange,
    cookieValue: string,
    validation: SessionValidation,
  ): boolean | Promise<boolean> {
    if (!validation.valid) throw new UnauthorizedException();
    const { session, renewedExpires } = validation;
    // A device-bound session also needs its short-lived bound cookie (the browser refreshes it
    // and retries by itself): the session cookie alone, copied elsewhere, no longer opens it.
    if (
      this.deviceBinding !== null &&
      session.deviceBound &&
      !carriesBoundCookie(request.headers?.cookie, session, validation.checkedAt, this.deviceBinding)
    ) {
      throw new UnauthorizedException();
    }
    this.requireRecentLogin(context, validation, cookieValue, response);
    const attach = (user: unknown): boolean => {
      // Any falsy result is "no user" (`false`, `0` and `''` included): a handler must never
      // run with a `request.user` that fails `if (user)`.
      if (!user) throw new UnauthorizedException();
      request.user = user;
      request[CURRENT_SESSION_KEY] = session;
      if (renewedExpires !== null && response !== undefined) {
        this.cookies.setCookie(response, cookieValue, renewedExpires);
      }
      return true;
    };
    let user: unknown;
    try {
      user = this.resolveUser(session.user);
    } catch (error) {
      throw this.resolveUserFailure(error);
    }
    if (!isPromiseLike(user)) return attach(user);
    return Promise.resolve(user).then(attach, (error: unknown) => {
      throw this.resolveUserFailure(error);
    });
  }

  /** An `HttpException` from `resolveUser` is the answer; anything else is a 503, logged. */
  private resolveUserFailure(error: unknown): unknown {
    if (error instanceof HttpException) return error;
    this.logger.error(`resolveUser failed, answering 503: ${describeDatabaseError(error)}`);
    return new ServiceUnavailableException();
  }

  /** Throws the 403 of `crossOriginProtection`, before the session is even read. */
  private refuseCrossOrigin(context: ExecutionContext): void {
    if (this.crossOrigin === null) return;
    const request = httpExchange(context)?.request;
    if (!request?.headers) return;
    const reason = crossOriginRefusal(request.method, request.headers, this.crossOrigin.trustedOrigins);
    if (reason === null) return;
    if (
      this.reflector.getAllAndOverride<boolean>(SKIP_CROSS_ORIGIN_CHECK_KEY, [context.getHandler(), context.getClass()])
    ) {
      return;
    }
    if (!this.loggedRefusals.has(reason)) {
      this.loggedRefusals.add(reason);
      // Method, path and the two headers, quoted and cut short (they are the sender's text):
      // never the cookie, nor the query string.
      const quoted = (text: unknown) => (text === undefined ? 'none' : JSON.stringify(String(text).slice(0, 200)));
      const { origin, 'sec-fetch-site': site } = request.headers;
      this.logger.warn(
        `Refused a cross-origin ${request.method} ${quoted((request.url ?? '').split('?')[0])} (${reason}: ` +
          `Sec-Fetch-Site ${quoted(site)}, Origin ${quoted(origin)}); further refusals for this reason are not logged.`,
      );
    }
    throw new CrossOriginRequestException(reason);
  }

  /** Throws the 403 of `@RequireRecentLogin(maxAgeMs)` when the last login is older, by the database clock. */
  private requireRecentLogin(
    context: ExecutionContext,
    validation: SessionValidation & { valid: true },
    cookieValue: string,
    response: HttpExchange['response'],
  ): void {
    const maxAgeMs = this.reflector.getAllAndOverride<number | undefined>(RECENT_LOGIN_KEY, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (maxAgeMs === undefined) return;
    const { session, checkedAt, renewedExpires } = validation;
    if (checkedAt.getTime() - session.authenticatedAt.getTime() <= maxAgeMs) return;
    // The session is live and may just have been renewed: the browser must learn the new expiry anyway.
    if (renewedExpires !== null && response !== undefined) {
      this.cookies.setCookie(response, cookieValue, renewedExpires);
    }
    throw new RecentLoginRequiredException(maxAgeMs);
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}
