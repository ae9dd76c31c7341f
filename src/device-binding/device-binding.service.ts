import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { ApplicationConfig } from '@nestjs/core';
import { SessionCache } from '../cache/session-cache.js';
import { describeDatabaseError } from '../errors.js';
import { SESSION_ID_COLUMN_LENGTH, SESSION_OPTIONS } from '../session.constants.js';
import type { ResolvedSessionOptions } from '../session.options.js';
import { putSetCookie, readSingleCookieValue } from '../http/session-cookie-header.js';
import { SessionDeviceBindingStore } from '../session-device-binding.store.js';
import { generateCookieValue, isWellFormedSessionId, sessionDigest } from '../session-token.js';
import { boundCookieAttributes, boundCookieSetCookie } from './bound-cookie.js';
import { verifyRefreshProof, verifyRegistrationProof } from './dbsc-proof.js';
import type { ResolvedDeviceBinding } from './device-binding.options.js';
import { readSfString, sfString } from './structured-field.js';

/** The DBSC header names (RFC 9651 structured fields). */
export const SECURE_SESSION_REGISTRATION = 'Secure-Session-Registration';
export const SECURE_SESSION_CHALLENGE = 'Secure-Session-Challenge';
const SECURE_SESSION_RESPONSE = 'secure-session-response';
const SEC_SECURE_SESSION_ID = 'sec-secure-session-id';

/** How many challenges stay open at once: the newest and two before it (a proof over one may still be on its way). */
const OPEN_CHALLENGES = 3;

/** A response the login sets headers on: an Express response or a Fastify reply. */
interface HeaderResponse {
  getHeader(name: string): unknown;
  setHeader?(name: string, value: string | string[]): unknown;
  header?(name: string, value: string | string[]): unknown;
}

/**
 * @internal Device Bound Session Credentials (W3C DBSC, the editor's draft of 2026-02-17):
 * the registration offer at login, and the registration and refresh endpoints, answered on
 * the raw Node request and response (so the same code serves Express and Fastify, from
 * `DeviceBindingMiddleware`). Every refusal is a 4xx that writes nothing to the session;
 * only a database failure is a 5xx (503, which browsers retry later instead of ending the
 * binding).
 */
@Injectable()
export class DeviceBinding {
  private readonly logger = new Logger('DeviceBinding');
  private readonly binding: ResolvedDeviceBinding | null;

  constructor(
    @Inject(SessionDeviceBindingStore) private readonly store: SessionDeviceBindingStore,
    @Inject(SessionCache) private readonly cache: SessionCache,
    @Inject(SESSION_OPTIONS) private readonly options: ResolvedSessionOptions,
    @Inject(ApplicationConfig) private readonly appConfig: ApplicationConfig,
  ) {
    this.binding = options.deviceBinding;
  }

  /** Whether `deviceBinding` is on. */
  get enabled(): boolean {
    return this.binding !== null;
  }

  /**
   * At login: opens a registration challenge on the new session and adds
   * `Secure-Session-Registration: (ES256);path="...";challenge="..."` to the response.
   */
  async offerRegistration(response: HeaderResponse, cookieValue: string): Promise<void> {
    if (this.binding === null) return;
    const challenge = newChallenge();
    await this.store.openChallenge(this.storedId(cookieValue)!, challenge, this.binding.challengeTtl, OPEN_CHALLENGES);
    const offer = `(ES256);path=${sfString(this.routePath(this.binding.registrationPath))};challenge=${sfString(challenge)}`;
    setHeader(response, SECURE_SESSION_REGISTRATION, offer);
  }

  /** The `Set-Cookie` that makes the browser drop the bound cookie (logout), or null when binding is off. */
  clearingSetCookie(): { name: string; setCookie: string } | null {
    if (this.binding === null) return null;
    return { name: this.binding.boundCookieName, setCookie: boundCookieSetCookie(this.binding, '', null) };
  }

  /** POST registration path: binds the session to the key of a valid proof over its challenge. */
  async register(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const binding = this.binding!;
    const id = this.storedId(readSingleCookieValue(request.headers.cookie, this.options.cookieName));
    if (id === null) return answer(response, 401, 'No session.');
    const token = readSfString(request.headers[SECURE_SESSION_RESPONSE]);
    if (token === null) return answer(response, 400, 'Secure-Session-Response missing or malformed.');
    const proof = await verifyRegistrationProof(token);
    if (!proof.ok) return answer(response, 400, `Registration proof refused (${proof.refusal}).`);
    await this.guarded(response, async () => {
      const deviceSessionId = randomBytes(16).toString('base64url');
      const cookieValue = generateCookieValue();
      const stored = await this.store.bind(
        id,
        this.options.absoluteTimeout,
        { key: proof.value, deviceSessionId, challenge: proof.challenge },
        { digest: sessionDigest(cookieValue), ttlMs: binding.boundCookieTtl },
      );
      if (stored === null) {
        const found = await this.store.findBinding(id, this.options.absoluteTimeout);
        if (found === null) return answer(response, 401, 'No session.');
        return answer(response, 403, 'Challenge unknown, expired or used, or the session is already bound.');
      }
      this.cache.invalidate([id]);
      putSetCookie(response, binding.boundCookieName, boundCookieSetCookie(binding, cookieValue, stored));
      // No Secure-Session-Challenge here: Chrome reports it as an error on a registration
      // answer; the first refresh gets its challenge from a 403.
      answer(response, 200, this.instructions(deviceSessionId));
    });
  }

  /**
   * POST refresh path. Without a proof: 403 and a fresh `Secure-Session-Challenge`; with a
   * valid proof by the session's key over an open challenge: a new bound cookie and the next
   * challenge; a valid signature over a challenge no longer open is answered like no proof
   * (a benign race); anything else is refused (4xx), which also makes the browser end the binding.
   */
  async refresh(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const binding = this.binding!;
    const deviceSessionId = readSfString(request.headers[SEC_SECURE_SESSION_ID]);
    if (deviceSessionId === null) return answer(response, 400, 'Sec-Secure-Session-Id missing or malformed.');
    const id = this.storedId(readSingleCookieValue(request.headers.cookie, this.options.cookieName));
    if (id === null) return answer(response, 401, 'No session.');
    const rawProof = request.headers[SECURE_SESSION_RESPONSE];
    const token = rawProof === undefined ? undefined : readSfString(rawProof);
    if (token === null) return answer(response, 400, 'Secure-Session-Response malformed.');
    await this.guarded(response, async () => {
      const found = await this.store.findBinding(id, this.options.absoluteTimeout);
      if (found === null || found.deviceKey === null || found.deviceSessionId !== deviceSessionId) {
        return answer(response, 401, 'No session bound under this id.');
      }
      if (token === undefined) return this.challenge(response, id, deviceSessionId);
      const proof = await verifyRefreshProof(token, found.deviceKey);
      if (!proof.ok) {
        return answer(response, proof.refusal === 'signature' ? 401 : 400, `Refresh proof refused (${proof.refusal}).`);
      }
      const cookieValue = generateCookieValue();
      const nextChallenge = newChallenge();
      const stored = await this.store.renew(
        id,
        this.options.absoluteTimeout,
        { key: found.deviceKey, deviceSessionId, challenge: proof.challenge },
        { digest: sessionDigest(cookieValue), ttlMs: binding.boundCookieTtl },
        { value: nextChallenge, ttlMs: binding.challengeTtl },
      );
      if (stored === null) return this.challenge(response, id, deviceSessionId);
      this.cache.invalidate([id]);
      putSetCookie(response, binding.boundCookieName, boundCookieSetCookie(binding, cookieValue, stored));
      // The next challenge comes with the cookie, so the next refresh needs no 403 round trip.
      response.setHeader(SECURE_SESSION_CHALLENGE, `${sfString(nextChallenge)};id=${sfString(deviceSessionId)}`);
      answer(response, 200, this.instructions(deviceSessionId));
    });
  }

  /** 403 with a freshly opened challenge, which the browser signs and sends again. */
  private async challenge(response: ServerResponse, id: string, deviceSessionId: string): Promise<void> {
    const challenge = newChallenge();
    const opened = await this.store.openChallenge(id, challenge, this.binding!.challengeTtl, OPEN_CHALLENGES);
    if (!opened) return answer(response, 401, 'No session.');
    response.setHeader(SECURE_SESSION_CHALLENGE, `${sfString(challenge)};id=${sfString(deviceSessionId)}`);
    answer(response, 403, 'Sign the challenge.');
  }

  /**
   * The session instructions (spec "JSON Session Instruction Format"): origin-scoped (the
   * bound cookie is `__Host-`-like: no Domain), the whole origin, one cookie credential.
   */
  private instructions(deviceSessionId: string): object {
    const binding = this.binding!;
    return {
      session_identifier: deviceSessionId,
      refresh_url: this.routePath(binding.refreshPath),
      scope: { include_site: false, scope_specification: [] },
      credentials: [{ type: 'cookie', name: binding.boundCookieName, attributes: boundCookieAttributes(binding) }],
    };
  }

  /** A route path as the browser requests it: behind the app's global prefix, as Nest mounts the middleware. */
  private routePath(path: string): string {
    const prefix = this.appConfig.getGlobalPrefix().replace(/^\/+|\/+$/g, '');
    return prefix === '' ? path : `/${prefix}${path}`;
  }

  /** A database failure is a 503 (logged without any header value), never a refusal that would end the binding. */
  private async guarded(response: ServerResponse, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      this.logger.error(`Device binding failed on the database, answering 503: ${describeDatabaseError(error)}`);
      if (!response.headersSent) answer(response, 503, 'Service unavailable.');
    }
  }

  /** The stored id of a session cookie value, or null when no row can have it (as `SessionService` decides). */
  private storedId(cookieValue: unknown): string | null {
    if (!isWellFormedSessionId(cookieValue)) return null;
    if (!this.options.hashSessionIds) return cookieValue.length > SESSION_ID_COLUMN_LENGTH ? null : cookieValue;
    return sessionDigest(cookieValue);
  }
}

/** A fresh challenge: 256 random bits, base64url. */
function newChallenge(): string {
  return randomBytes(32).toString('base64url');
}

/** Ends the exchange: JSON, never cached (the answers carry cookies and challenges). */
function answer(response: ServerResponse, status: number, body: string | object): void {
  const json = JSON.stringify(typeof body === 'string' ? { statusCode: status, message: body } : body);
  response.statusCode = status;
  response.setHeader('Content-Type', 'application/json; charset=utf-8');
  response.setHeader('Cache-Control', 'no-store');
  response.end(json);
}

function setHeader(response: HeaderResponse, name: string, value: string): void {
  if (typeof response.setHeader === 'function') response.setHeader(name, value);
  else response.header!(name, value);
}
