import { Inject, Injectable } from '@nestjs/common';
import { SESSION_OPTIONS } from '../session.constants.js';
import { CURRENT_SESSION_KEY, type SessionRequest } from './session.decorators.js';
import type { ResolvedSessionOptions } from '../session.options.js';
import { SessionService } from '../session.service.js';
import { type DeviceRequest, deviceOfRequest } from '../session-device.js';
import {
  type HeaderWritableResponse,
  putSetCookie,
  readCookieValues,
  readSingleCookieValue,
  serializeSetCookie,
} from './session-cookie-header.js';
import { DeviceBinding } from '../device-binding/device-binding.service.js';

/**
 * A response the helpers can set cookies on: an Express `Response` (any Node
 * `ServerResponse`) or a `FastifyReply`, as `@Res({ passthrough: true })` gives.
 * @publicApi
 */
export type SessionCookieResponse = HeaderWritableResponse;

/** The epoch, as `Expires` of a cleared cookie. */
const EPOCH = new Date(0);

/** Most distinct cookie values one logout deletes; a browser sends at most a few. */
const MAX_LOGOUT_VALUES = 8;

/**
 * Login, logout and rotation that set and clear the session cookie on Express and
 * Fastify responses without cookie plugins. The cookie is `HttpOnly`, has the
 * module's `cookie` attributes, and `Max-Age`/`Expires` matching the session's `expires`.
 * Methods reject with the driver's error when the database fails (Nest answers 500
 * unless you catch it); they never touch the cookie in that case.
 * @publicApi
 */
@Injectable()
export class SessionCookies {
  constructor(
    @Inject(SessionService) private readonly sessions: SessionService,
    @Inject(SESSION_OPTIONS) private readonly options: ResolvedSessionOptions,
    @Inject(DeviceBinding) private readonly deviceBinding: DeviceBinding,
  ) {}

  /**
   * Creates a session for `userId` and sets its cookie. Returns the cookie value.
   * Does not end a session the request already had: call `logout` first, or
   * `rotate` instead, when you want that.
   * The session records the login request's `User-Agent` and address (as `deviceInfo`
   * allows): from `request` when given, else from the request the response belongs to
   * (Express `res.req`, Fastify `reply.request`), so existing `login(response, userId)`
   * calls record them too.
   * With `deviceBinding`, the response also offers the browser to bind the session to its
   * device (`Secure-Session-Registration`).
   * @throws InvalidSessionError when `userId` is empty or longer than 255 characters.
   */
  async login(response: SessionCookieResponse, userId: string, request?: SessionRequest): Promise<string> {
    const device = deviceOfRequest((request ?? requestOfResponse(response)) as DeviceRequest | undefined);
    const { cookieValue, session } = await this.sessions.issueSession(userId, device);
    await this.deviceBinding.offerRegistration(response, cookieValue);
    // Max-Age from the row's own clock: exactly the ttl (or absoluteTimeout), whatever the app server's clock says.
    this.writeCookie(response, cookieValue, session.expires, session.expires.getTime() - session.created.getTime());
    return cookieValue;
  }

  /**
   * Deletes the session the request's cookie names and clears the cookie. Without
   * a session it only clears the cookie (logging out twice is fine). When the cookie
   * is sent several times with different values, each of their sessions is deleted.
   */
  async logout(request: SessionRequest, response: SessionCookieResponse): Promise<void> {
    const values = [...new Set(readCookieValues(request.headers.cookie, this.options.cookieName))];
    for (const cookieValue of values.slice(0, MAX_LOGOUT_VALUES)) {
      await this.sessions.deleteSession(cookieValue);
    }
    this.clearCookie(response);
  }

  /**
   * Deletes every session of the request's user ("log out of all devices") and
   * clears the cookie. The user is the one `AuthGuard` validated, else the one the
   * cookie names. Returns how many sessions were deleted (0 without a live session).
   */
  async logoutEverywhere(request: SessionRequest, response: SessionCookieResponse): Promise<number> {
    const userId = await this.currentUserId(request);
    const deleted = userId === null ? 0 : await this.sessions.deleteSessionsByUserId(userId);
    this.clearCookie(response);
    return deleted;
  }

  /**
   * Replaces the request's session with a fresh id (same user, same expiry) and
   * sets the new cookie; the old value stops working at once. Call it after a
   * privilege change against session fixation. Returns the new cookie value, or
   * null (cookie untouched) when the request has no live session.
   */
  async rotate(request: SessionRequest, response: SessionCookieResponse): Promise<string | null> {
    const cookieValue = this.getCookieValue(request);
    if (cookieValue === null) return null;
    const rotated = await this.sessions.rotateSession(cookieValue);
    if (!rotated) return null;
    this.setCookie(response, rotated.cookieValue, rotated.session.expires);
    if (request[CURRENT_SESSION_KEY]) request[CURRENT_SESSION_KEY] = rotated.session;
    return rotated.cookieValue;
  }

  /**
   * After the app has checked the user's password again: marks the request's session as
   * freshly authenticated (`authenticatedAt` = the database's `now()`, for
   * `@RequireRecentLogin` routes) under a fresh id, and sets the new cookie; the old value
   * stops working at once. Returns the new cookie value, or null (cookie untouched) when
   * the request has no live session.
   */
  async reauthenticate(request: SessionRequest, response: SessionCookieResponse): Promise<string | null> {
    const cookieValue = this.getCookieValue(request);
    if (cookieValue === null) return null;
    const renewed = await this.sessions.reauthenticateSession(cookieValue);
    if (!renewed) return null;
    this.setCookie(response, renewed.cookieValue, renewed.session.expires);
    if (request[CURRENT_SESSION_KEY]) request[CURRENT_SESSION_KEY] = renewed.session;
    return renewed.cookieValue;
  }

  /**
   * The session cookie value the request carries, or null when there is none or it
   * is ambiguous (sent several times with different values). For
   * `SessionService.deleteOtherSessions(userId, cookieValue)` and the like.
   */
  getCookieValue(request: SessionRequest): string | null {
    return readSingleCookieValue(request.headers.cookie, this.options.cookieName) ?? null;
  }

  /** Sets the session cookie to `cookieValue`, expiring at `expires` (for sessions made with `SessionService`). */
  setCookie(response: SessionCookieResponse, cookieValue: string, expires: Date): void {
    this.writeCookie(response, cookieValue, expires, expires.getTime() - Date.now());
  }

  /** Sets an already-expired session cookie, which makes the browser drop it. */
  clearCookie(response: SessionCookieResponse): void {
    const { cookieName, cookie } = this.options;
    putSetCookie(response, cookieName, serializeSetCookie(cookieName, '', EPOCH, 0, cookie));
    // With `deviceBinding`, the bound cookie goes too (it opens nothing without its session).
    const bound = this.deviceBinding.clearingSetCookie();
    if (bound !== null) putSetCookie(response, bound.name, bound.setCookie);
  }

  private writeCookie(response: SessionCookieResponse, cookieValue: string, expires: Date, lifetimeMs: number): void {
    const { cookieName, cookie } = this.options;
    const maxAgeSeconds = Math.max(0, Math.floor(lifetimeMs / 1000));
    putSetCookie(response, cookieName, serializeSetCookie(cookieName, cookieValue, expires, maxAgeSeconds, cookie));
  }

  private async currentUserId(request: SessionRequest): Promise<string | null> {
    const validated = request[CURRENT_SESSION_KEY];
    if (validated) return validated.user;
    const cookieValue = this.getCookieValue(request);
    return cookieValue === null ? null : this.sessions.getUserIdFromSessionId(cookieValue);
  }
}

/** The request a response answers: Express sets `res.req`, Fastify `reply.request`. */
function requestOfResponse(response: SessionCookieResponse): unknown {
  const linked = response as { req?: unknown; request?: unknown };
  return linked.req ?? linked.request;
}
