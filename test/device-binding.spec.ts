import { generateKeyPairSync } from 'node:crypto';
import { Controller, Get, Inject } from '@nestjs/common';
import fc from 'fast-check';
import request from 'supertest';
import type { DataSource } from 'typeorm';
import {
  CurrentSession,
  type Session,
  SessionConfigurationError,
  type SessionModuleForRootOptions,
  SessionService,
} from '../src/index.js';
import { resolveSessionOptions } from '../src/session.options.js';
import { readSfString } from '../src/device-binding/structured-field.js';
import { cacheOf } from './cache/support.js';
import { base64url, DbscDevice, readChallenge, readRegistration, sfString } from './support/dbsc-client.js';
import { TEST_DATABASES, type OpenDatabase } from './support/databases.js';
import {
  AuthFixtureController,
  bootHttpApp,
  cookiePair,
  digestOf,
  handlerRuns,
  HTTP_PLATFORMS,
  type HttpApp,
  ProfileFixtureController,
  setCookies,
} from './support/http-app.js';

const BOUND = '__Host-session_id-bound';
const BOUND_TTL_MS = 60_000;

/** The device list as the demo shows it: which sessions are bound to their device. */
@Controller('bound-devices')
class BoundDevicesController {
  constructor(@Inject(SessionService) private readonly sessions: SessionService) {}

  @Get()
  async list(@CurrentSession() current: Session) {
    const sessions = await this.sessions.listByUserId(current.user);
    return sessions.map((session) => ({ id: session.id, deviceBound: session.deviceBound }));
  }
}

/** One browser: its cookies, its DBSC key and what the server told it. */
interface Browser {
  device: DbscDevice;
  session: string;
  bound?: string;
  dbscId?: string;
  refreshUrl?: string;
  /** The challenge a refresh handed over for the next one. */
  nextChallenge?: string;
  registration: { path: string; challenge: string };
}

function cookies(...pairs: (string | undefined)[]): string {
  return pairs.filter((pair) => pair !== undefined).join('; ');
}

function idOf(browser: Browser): string {
  return digestOf(browser.session.split('=')[1]);
}

/** Every column of the row, for "the session is untouched" (the challenges apart when `withoutChallenges`). */
async function rowOf(dataSource: DataSource, id: string, withoutChallenges = false): Promise<Record<string, unknown>> {
  const [row] = await dataSource.query('SELECT * FROM sessions WHERE id = $1', [id]);
  if (row && withoutChallenges) delete row.device_challenges;
  return row;
}

describe('deviceBinding options', () => {
  it('are off by default, take defaults with true, and refuse bad settings at startup naming the fix', () => {
    expect(resolveSessionOptions({}).deviceBinding).toBeNull();
    expect(resolveSessionOptions({ deviceBinding: true }).deviceBinding).toEqual({
      registrationPath: '/dbsc/registration',
      refreshPath: '/dbsc/refresh',
      boundCookieName: '__Host-session_id-bound',
      boundCookieTtl: 600_000,
      challengeTtl: 900_000,
      sameSite: 'lax',
    });
    expect(resolveSessionOptions({ deviceBinding: { boundCookieTtl: 3_600_000 } }).deviceBinding?.challengeTtl).toBe(
      3_600_000,
    );
    const bad: [SessionModuleForRootOptions, RegExp][] = [
      [{ deviceBinding: 'yes' as unknown as boolean }, /deviceBinding must be true, false or \{/],
      [{ deviceBinding: { registrationPath: 'dbsc' } }, /registrationPath "dbsc" must be a plain path/],
      [{ deviceBinding: { refreshPath: '/dbsc/:id' } }, /refreshPath/],
      [{ deviceBinding: { refreshPath: '/dbsc/' } }, /refreshPath/],
      [{ deviceBinding: { refreshPath: '/dbsc/registration' } }, /must differ/],
      [{ deviceBinding: { boundCookieName: 'a;b' } }, /boundCookieName "a;b" is not a valid cookie name/],
      [{ deviceBinding: { boundCookieName: 'session_id' } }, /boundCookieName must differ from cookieName/],
      [
        { deviceBinding: { boundCookieTtl: 500 } },
        /boundCookieTtl must be a whole number of milliseconds, at least 1000/,
      ],
      [{ deviceBinding: { boundCookieTtl: 60_000, challengeTtl: 30_000 } }, /challengeTtl .* at least boundCookieTtl/],
    ];
    for (const [options, message] of bad) {
      expect(() => resolveSessionOptions(options)).toThrow(SessionConfigurationError);
      expect(() => resolveSessionOptions(options)).toThrow(message);
    }
  });

  it('read the sf-strings of the request headers strictly, parameters ignored', () => {
    expect(readSfString('"abc";x=1')).toBe('abc');
    expect(readSfString(' "a\\"b" ')).toBe('a"b');
    expect(readSfString('bare.token')).toBe('bare.token');
    for (const bad of [
      '"open',
      '"a", "b"',
      '"a\\x"',
      '"\u0001"',
      '',
      undefined,
      ['"a"'],
      'a b',
      `"${'x'.repeat(9000)}"`,
    ]) {
      expect(readSfString(bad)).toBeNull();
    }
  });
});

describe.each(TEST_DATABASES)('device-bound sessions (DBSC) on %s', (label, database) => {
  describe.each(HTTP_PLATFORMS)('on %s', (_platform, platform) => {
    let db: OpenDatabase;
    let http: HttpApp;

    beforeAll(async () => {
      db = await database.open();
      http = await bootHttpApp(platform, {
        database: db.options,
        session: { globalGuard: true, deviceBinding: { boundCookieTtl: BOUND_TTL_MS } },
        controllers: [AuthFixtureController, ProfileFixtureController, BoundDevicesController],
      });
    });

    afterAll(async () => {
      await http?.close();
      await db?.dispose();
    });

    async function login(user = 'alice'): Promise<Browser> {
      const response = await request(http.server).post('/auth/login').send({ userId: user }).expect(200);
      const registration = readRegistration(response.headers['secure-session-registration']);
      expect(registration.algorithms).toEqual(['ES256']);
      return { device: new DbscDevice(), session: cookiePair(response), registration };
    }

    function postRegistration(browser: Browser, proof?: string, path = browser.registration.path) {
      const post = request(http.server).post(path).set('Cookie', browser.session);
      return proof === undefined ? post : post.set('Secure-Session-Response', sfString(proof));
    }

    async function register(browser: Browser): Promise<void> {
      const response = await postRegistration(
        browser,
        browser.device.registrationProof(browser.registration.challenge),
      );
      expect(response.status).toBe(200);
      browser.bound = cookiePair(response, BOUND);
      browser.dbscId = response.body.session_identifier;
      browser.refreshUrl = response.body.refresh_url;
    }

    function postRefresh(browser: Browser, proof?: string, sessionId = browser.dbscId!) {
      const post = request(http.server)
        .post(browser.refreshUrl ?? '/dbsc/refresh')
        .set('Cookie', cookies(browser.session, browser.bound))
        .set('Sec-Secure-Session-Id', sfString(sessionId));
      return proof === undefined ? post : post.set('Secure-Session-Response', sfString(proof));
    }

    /** The 403 round trip: a refresh without a proof is answered with a challenge for this session. */
    async function askChallenge(browser: Browser): Promise<string> {
      const asked = await postRefresh(browser);
      expect(asked.status).toBe(403);
      const offered = readChallenge(asked.headers['secure-session-challenge']);
      expect(offered.id).toBe(browser.dbscId);
      return offered.challenge;
    }

    /** The browser's refresh: the cached challenge if it has one, else the 403 round trip. */
    async function refresh(browser: Browser): Promise<void> {
      const challenge = browser.nextChallenge ?? (await askChallenge(browser));
      const response = await postRefresh(browser, browser.device.refreshProof(challenge));
      expect(response.status).toBe(200);
      browser.bound = cookiePair(response, BOUND);
      const next = readChallenge(response.headers['secure-session-challenge']);
      expect(next.id).toBe(browser.dbscId);
      browser.nextChallenge = next.challenge;
    }

    async function me(...pairs: (string | undefined)[]): Promise<number> {
      return (
        await request(http.server)
          .get('/me')
          .set('Cookie', cookies(...pairs))
      ).status;
    }

    /** Ages every bound cookie of the session past its expiry (the guard judges by the database clock). */
    async function expireBoundCookies(browser: Browser): Promise<void> {
      await http.dataSource.query(
        `UPDATE sessions SET bound_cookie_expires = now() - interval '1 second',
                             previous_bound_cookie_expires = now() - interval '1 second' WHERE id = $1`,
        [idOf(browser)],
      );
    }

    it('login → registration → bound requests 200 → bound cookie expired 401 → refresh with a challenge round trip → 200', async () => {
      const browser = await login();
      expect(browser.registration.path).toBe('/dbsc/registration');
      // Before registering, the session works as any other (browsers without DBSC stay here).
      expect(await me(browser.session)).toBe(200);

      const response = await postRegistration(
        browser,
        browser.device.registrationProof(browser.registration.challenge),
      );
      expect(response.status).toBe(200);
      expect(response.headers['cache-control']).toBe('no-store');
      expect(response.headers['secure-session-challenge']).toBeUndefined();
      expect(response.body).toEqual({
        session_identifier: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
        refresh_url: '/dbsc/refresh',
        scope: { include_site: false, scope_specification: [] },
        credentials: [{ type: 'cookie', name: BOUND, attributes: 'Path=/; Secure; HttpOnly; SameSite=Lax' }],
      });
      const boundSetCookie = setCookies(response).find((line) => line.startsWith(`${BOUND}=`))!;
      expect(boundSetCookie).toMatch(/; Path=\/; Max-Age=60; Expires=.*; HttpOnly; Secure; SameSite=Lax$/);
      browser.bound = cookiePair(response, BOUND);
      browser.dbscId = response.body.session_identifier;
      browser.refreshUrl = response.body.refresh_url;
      const [stored] = await http.dataSource.query(
        `SELECT device_key, device_session_id, device_challenges,
                extract(epoch FROM bound_cookie_expires - now()) AS "secondsLeft" FROM sessions WHERE id = $1`,
        [idOf(browser)],
      );
      expect(stored.device_key).toEqual(browser.device.publicJwk);
      expect(stored.device_session_id).toBe(browser.dbscId);
      expect(stored.device_challenges).toBeNull(); // the registration challenge is used up
      expect(Number(stored.secondsLeft)).toBeGreaterThan(55);
      expect(Number(stored.secondsLeft)).toBeLessThanOrEqual(60);

      handlerRuns.count = 0;
      expect(await me(browser.session, browser.bound)).toBe(200);
      expect(await me(browser.session, browser.bound)).toBe(200);
      expect(handlerRuns.count).toBe(2);
      // The session cookie alone no longer opens a bound session, nor with a made-up bound cookie.
      expect(await me(browser.session)).toBe(401);
      expect(await me(browser.session, `${BOUND}=${'A'.repeat(43)}`)).toBe(401);
      expect(handlerRuns.count).toBe(2);

      await expireBoundCookies(browser);
      expect(await me(browser.session, browser.bound)).toBe(401);

      const before = browser.bound;
      await refresh(browser);
      expect(browser.bound).not.toBe(before);
      expect(await me(browser.session, browser.bound)).toBe(200);
      // The next refresh uses the challenge the last one handed over: no 403 round trip.
      await expireBoundCookies(browser);
      expect(await me(browser.session, browser.bound)).toBe(401);
      await refresh(browser);
      expect(await me(browser.session, browser.bound)).toBe(200);
    });

    it('keeps the previous bound cookie until its own expiry (requests in flight during a refresh)', async () => {
      const browser = await login();
      await register(browser);
      const first = browser.bound;
      await refresh(browser);
      expect(await me(browser.session, first)).toBe(200);
      expect(await me(browser.session, browser.bound)).toBe(200);
      await refresh(browser);
      // Two refreshes later the first one is neither current nor previous.
      expect(await me(browser.session, first)).toBe(401);
    });

    it('theft: a copied session cookie alone fails; copied with the bound cookie it works until that expires, never after; the thief cannot refresh', async () => {
      const owner = await login('victim');
      await register(owner);
      const id = idOf(owner);
      // Malware copies both cookies to another machine: no key there.
      const thief: Browser = { ...owner, device: new DbscDevice(), nextChallenge: undefined };
      expect(await me(thief.session)).toBe(401);
      expect(await me(thief.session, thief.bound)).toBe(200); // until the bound cookie expires (minutes)
      await expireBoundCookies(owner);
      expect(await me(thief.session, thief.bound)).toBe(401);

      const untouched = await rowOf(http.dataSource, id, true);
      // The thief's refresh: asked to sign, it can only sign with its own key.
      const asked = await postRefresh(thief);
      expect(asked.status).toBe(403);
      const { challenge } = readChallenge(asked.headers['secure-session-challenge']);
      const signedByThief = await postRefresh(thief, thief.device.refreshProof(challenge));
      expect(signedByThief.status).toBe(401);
      expect(setCookies(signedByThief)).toEqual([]);
      // Its own key in the header changes nothing: the stored key decides.
      const withJwk = await postRefresh(
        thief,
        thief.device.refreshProof(challenge, { header: { jwk: thief.device.publicJwk } }),
      );
      expect(withJwk.status).toBe(401);
      // Nor can it bind the session anew to its key.
      const rebind = await postRegistration(thief, thief.device.registrationProof(challenge));
      expect(rebind.status).toBe(403);
      expect(await rowOf(http.dataSource, id, true)).toEqual(untouched);
      expect(await me(thief.session, thief.bound)).toBe(401);

      // The owner's device refreshes over the very challenge the thief was shown, and goes on.
      const response = await postRefresh(owner, owner.device.refreshProof(challenge));
      expect(response.status).toBe(200);
      owner.bound = cookiePair(response, BOUND);
      expect(await me(owner.session, owner.bound)).toBe(200);
    });

    it('refuses bad registrations with a 4xx and leaves the session as it was', async () => {
      const browser = await login('bob');
      const other = await login('carol');
      const id = idOf(browser);
      const untouched = await rowOf(http.dataSource, id);
      const { challenge } = browser.registration;
      const p384 = new DbscDevice('P-384');
      const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const unsigned = (header: object, payload: object) =>
        `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}.`;
      const cases: [string, Promise<request.Response> | request.Test, number][] = [
        [
          'no session cookie',
          request(http.server)
            .post('/dbsc/registration')
            .set('Secure-Session-Response', sfString(browser.device.registrationProof(challenge))),
          401,
        ],
        ['no Secure-Session-Response', postRegistration(browser), 400],
        [
          'alg none',
          postRegistration(
            browser,
            unsigned({ alg: 'none', typ: 'dbsc+jwt', jwk: browser.device.publicJwk }, { jti: challenge }),
          ),
          400,
        ],
        [
          'typ jwt',
          postRegistration(browser, browser.device.registrationProof(challenge, { header: { typ: 'JWT' } })),
          400,
        ],
        [
          'no typ',
          postRegistration(browser, browser.device.registrationProof(challenge, { header: { typ: undefined } })),
          400,
        ],
        [
          'alg ES384 with a P-384 key',
          postRegistration(browser, p384.registrationProof(challenge, { header: { alg: 'ES384' } })),
          400,
        ],
        ['a P-384 key claiming ES256', postRegistration(browser, p384.registrationProof(challenge)), 400],
        [
          'RS256',
          postRegistration(
            browser,
            browser.device.registrationProof(challenge, {
              header: { alg: 'RS256', jwk: rsa.publicKey.export({ format: 'jwk' }) },
              signWith: rsa.privateKey,
            }),
          ),
          400,
        ],
        [
          'HS256',
          postRegistration(browser, browser.device.registrationProof(challenge, { header: { alg: 'HS256' } })),
          400,
        ],
        [
          'a private key in the header',
          postRegistration(
            browser,
            browser.device.registrationProof(challenge, { header: { jwk: browser.device.privateJwk() } }),
          ),
          400,
        ],
        ['no jwk', postRegistration(browser, browser.device.refreshProof(challenge)), 400],
        [
          'signed by another key than the header names',
          postRegistration(
            browser,
            browser.device.registrationProof(challenge, { signWith: new DbscDevice().privateKey }),
          ),
          400,
        ],
        [
          'no jti',
          postRegistration(browser, browser.device.registrationProof(challenge, { payload: { jti: undefined } })),
          400,
        ],
        [
          'jti a number',
          postRegistration(browser, browser.device.registrationProof(challenge, { payload: { jti: 42 } })),
          400,
        ],
        ['an unknown challenge', postRegistration(browser, browser.device.registrationProof('made-up')), 403],
        [
          "another session's challenge",
          postRegistration(browser, browser.device.registrationProof(other.registration.challenge)),
          403,
        ],
        ['a bare JSON body instead of a JWT', postRegistration(browser, '{"jti":"x"}'), 400],
      ];
      for (const [name, pending, status] of cases) {
        const response = await pending;
        expect({ name, status: response.status }).toEqual({ name, status });
        expect(setCookies(response)).toEqual([]);
      }
      expect(await rowOf(http.dataSource, id)).toEqual(untouched);

      // An expired challenge (the database clock decides): refused, then still nothing written.
      await http.dataSource.query(
        `UPDATE sessions SET device_challenges = jsonb_build_array(jsonb_build_object('value', $2::text,
           'expires', extract(epoch FROM now()) * 1000 - 1)) WHERE id = $1`,
        [id, challenge],
      );
      const expiredRow = await rowOf(http.dataSource, id);
      expect((await postRegistration(browser, browser.device.registrationProof(challenge))).status).toBe(403);
      expect(await rowOf(http.dataSource, id)).toEqual(expiredRow);
      // Logged out: the session is gone, 401.
      await request(http.server).post('/auth/logout').set('Cookie', other.session).expect(200);
      expect((await postRegistration(other, other.device.registrationProof(other.registration.challenge))).status).toBe(
        401,
      );
    });

    it('uses a registration challenge once: a replayed registration is refused', async () => {
      const browser = await login('dave');
      const proof = browser.device.registrationProof(browser.registration.challenge);
      expect((await postRegistration(browser, proof)).status).toBe(200);
      const row = await rowOf(http.dataSource, idOf(browser));
      const replay = await postRegistration(browser, proof);
      expect(replay.status).toBe(403);
      expect(await rowOf(http.dataSource, idOf(browser))).toEqual(row);
    });

    it('refuses bad refreshes with a 4xx and never touches the binding or the session', async () => {
      const browser = await login('erin');
      await register(browser);
      const id = idOf(browser);
      await refresh(browser); // leaves a handed-over challenge open
      const open = browser.nextChallenge!;
      const untouched = await rowOf(http.dataSource, id, true);
      const unsigned = (header: object) =>
        `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify({ jti: open }))}.`;
      const cases: [string, () => request.Test, number][] = [
        [
          'no Sec-Secure-Session-Id',
          () => request(http.server).post('/dbsc/refresh').set('Cookie', cookies(browser.session, browser.bound)),
          400,
        ],
        [
          'a wrong Sec-Secure-Session-Id',
          () => postRefresh(browser, browser.device.refreshProof(open), 'not-this-one'),
          401,
        ],
        [
          'no session cookie',
          () =>
            request(http.server)
              .post('/dbsc/refresh')
              .set('Sec-Secure-Session-Id', sfString(browser.dbscId!))
              .set('Secure-Session-Response', sfString(browser.device.refreshProof(open))),
          401,
        ],
        ['a wrong key', () => postRefresh(browser, new DbscDevice().refreshProof(open)), 401],
        ['alg none', () => postRefresh(browser, unsigned({ alg: 'none', typ: 'dbsc+jwt' })), 400],
        ['typ jwt', () => postRefresh(browser, browser.device.refreshProof(open, { header: { typ: 'JWT' } })), 400],
        ['HS256', () => postRefresh(browser, browser.device.refreshProof(open, { header: { alg: 'HS256' } })), 400],
        // A cut signature is well-formed base64url that does not verify: a signature failure.
        ['truncated', () => postRefresh(browser, browser.device.refreshProof(open).slice(0, -10)), 401],
        [
          'truncated to two parts',
          () => postRefresh(browser, browser.device.refreshProof(open).replace(/\.[^.]*$/, '')),
          400,
        ],
        [
          'two proofs',
          () =>
            postRefresh(browser).set(
              'Secure-Session-Response',
              `${sfString(browser.device.refreshProof(open))}, ${sfString(browser.device.refreshProof(open))}`,
            ),
          400,
        ],
      ];
      for (const [name, send, status] of cases) {
        const response = await send();
        expect({ name, status: response.status }).toEqual({ name, status });
        expect(setCookies(response)).toEqual([]);
      }
      expect(await rowOf(http.dataSource, id, true)).toEqual(untouched);

      // A valid signature over a challenge no longer open (used, expired, unknown) is a benign
      // race: 403 with a fresh challenge, and no new bound cookie.
      const used = browser.nextChallenge!;
      await refresh(browser);
      const afterRefresh = await rowOf(http.dataSource, id, true);
      for (const stale of [used, 'never-issued']) {
        const response = await postRefresh(browser, browser.device.refreshProof(stale));
        expect(response.status).toBe(403);
        expect(readChallenge(response.headers['secure-session-challenge']).id).toBe(browser.dbscId);
        expect(setCookies(response)).toEqual([]);
      }
      await http.dataSource.query(
        `UPDATE sessions SET device_challenges = (SELECT jsonb_agg(jsonb_set(c, '{expires}', to_jsonb(extract(epoch FROM now()) * 1000 - 1)))
           FROM jsonb_array_elements(device_challenges) c) WHERE id = $1`,
        [id],
      );
      const expired = await postRefresh(browser, browser.device.refreshProof(browser.nextChallenge!));
      expect(expired.status).toBe(403);
      expect(await rowOf(http.dataSource, id, true)).toEqual(afterRefresh);
      // At most three challenges stay open however often a client asks.
      for (let asked = 0; asked < 5; asked++) expect((await postRefresh(browser)).status).toBe(403);
      const [{ open: openCount }] = await http.dataSource.query(
        'SELECT jsonb_array_length(device_challenges) AS open FROM sessions WHERE id = $1',
        [id],
      );
      expect(openCount).toBe(3);
    });

    it('two refreshes racing on one challenge: exactly one gets a bound cookie, the other a fresh challenge', async () => {
      const browser = await login('race');
      await register(browser);
      const challenge = await askChallenge(browser);
      const proof = browser.device.refreshProof(challenge);
      const answers = await Promise.all([postRefresh(browser, proof), postRefresh(browser, proof)]);
      expect(answers.map((answer) => answer.status).sort()).toEqual([200, 403]);
      const [{ current }] = await http.dataSource.query('SELECT bound_cookie AS current FROM sessions WHERE id = $1', [
        idOf(browser),
      ]);
      const winner = answers.find((answer) => answer.status === 200)!;
      expect(current).toBe(digestOf(cookiePair(winner, BOUND).split('=')[1]));
    });

    it('answers a refresh for a session that never registered, or is gone, with 401 (the browser ends its binding)', async () => {
      const unbound = await login('frank');
      expect((await postRefresh(unbound, undefined, 'anything')).status).toBe(401);
      const browser = await login('frank');
      await register(browser);
      await request(http.server)
        .post('/auth/logout')
        .set('Cookie', cookies(browser.session, browser.bound))
        .expect(200);
      expect((await postRefresh(browser)).status).toBe(401);
    });

    it("serves its POSTs before any guard: the browser's same-origin requests pass; a cross-site form can change nothing", async () => {
      const browser = await login('olga');
      const id = idOf(browser);
      const proof = browser.device.registrationProof(browser.registration.challenge);
      // What a cross-site form can send (no custom headers): refused by the endpoint itself, not by a guard.
      const forged = await request(http.server)
        .post('/dbsc/registration')
        .set('Cookie', browser.session)
        .set('Sec-Fetch-Site', 'cross-site')
        .set('Origin', 'https://evil.example')
        .type('form')
        .send({ jwt: proof });
      expect(forged.status).toBe(400);
      expect(forged.body.code).toBeUndefined(); // not the guard's CROSS_ORIGIN_REQUEST
      const forgedRefresh = await request(http.server)
        .post('/dbsc/refresh')
        .set('Cookie', browser.session)
        .set('Sec-Fetch-Site', 'cross-site');
      expect(forgedRefresh.status).toBe(400);
      expect((await rowOf(http.dataSource, id)).device_key).toBeNull();
      // The browser's own registration: same-origin, as the spec's fetch sends it.
      const registered = await postRegistration(browser, proof)
        .set('Sec-Fetch-Site', 'same-origin')
        .set('Origin', 'http://127.0.0.1');
      expect(registered.status).toBe(200);
    });

    it('logout clears the bound cookie too, and revocation ends a bound session at once', async () => {
      const browser = await login('gina');
      await register(browser);
      const logout = await request(http.server)
        .post('/auth/logout')
        .set('Cookie', cookies(browser.session, browser.bound))
        .expect(200);
      const cleared = setCookies(logout).find((line) => line.startsWith(`${BOUND}=;`));
      expect(cleared).toMatch(/Max-Age=0/);
      expect(await me(browser.session, browser.bound)).toBe(401);

      const revoked = await login('gina');
      await register(revoked);
      const list = await request(http.server)
        .get('/bound-devices')
        .set('Cookie', cookies(revoked.session, revoked.bound))
        .expect(200);
      expect(list.body).toEqual([{ id: idOf(revoked), deviceBound: true }]);
      await http.sessions.deleteById(idOf(revoked));
      expect(await me(revoked.session, revoked.bound)).toBe(401);
    });

    it('rotation keeps the binding: the new session cookie needs the same device, and refreshes go on', async () => {
      const browser = await login('hank');
      await register(browser);
      const plain = await login('hank'); // never registers: listed as not bound
      const rotated = await request(http.server)
        .post('/auth/rotate')
        .set('Cookie', cookies(browser.session, browser.bound))
        .expect(200);
      const oldSession = browser.session;
      browser.session = cookiePair(rotated);
      expect(browser.session).not.toBe(oldSession);
      expect(await me(oldSession, browser.bound)).toBe(401);
      expect(await me(browser.session, browser.bound)).toBe(200);
      expect(await me(browser.session)).toBe(401);
      await expireBoundCookies(browser);
      await refresh(browser);
      expect(await me(browser.session, browser.bound)).toBe(200);
      const list = await request(http.server)
        .get('/bound-devices')
        .set('Cookie', cookies(browser.session, browser.bound))
        .expect(200);
      expect(list.body).toEqual(
        expect.arrayContaining([
          { id: idOf(browser), deviceBound: true },
          { id: idOf(plain), deviceBound: false },
        ]),
      );
    });

    it('a fuzzed Secure-Session-Response is never a 5xx, and never changes the session', async () => {
      const browser = await login('ivan');
      const registered = await login('ivan');
      await register(registered);
      const valid = browser.device.registrationProof(browser.registration.challenge);
      const refreshValid = registered.device.refreshProof('x');
      const token = fc.oneof(
        fc.string({ unit: fc.constantFrom(...'AZaz09-_.=" ;,\\{}:'.split('')), maxLength: 400 }),
        fc.nat({ max: valid.length - 1 }).map((cut) => valid.slice(0, cut)),
        // Changes in the signed text only: a changed last character of the signature may decode
        // to the same bytes (base64url's spare bits), which would be the valid proof itself.
        fc
          .tuple(fc.nat({ max: valid.lastIndexOf('.') - 1 }), fc.constantFrom('A', '.', '_', '-'))
          .map(([at, character]) => valid.slice(0, at) + character + valid.slice(at + 1))
          .filter((mutated) => mutated !== valid),
        fc
          .tuple(fc.jsonValue(), fc.jsonValue(), fc.uint8Array({ maxLength: 80 }))
          .map(
            ([header, payload, signature]) =>
              `${base64url(JSON.stringify(header) ?? '')}.${base64url(JSON.stringify(payload) ?? '')}.${Buffer.from(signature).toString('base64url')}`,
          ),
        fc.constantFrom(
          refreshValid,
          valid.replace(/^[^.]+/, base64url(JSON.stringify({ alg: 'none', typ: 'dbsc+jwt' }))),
          `${valid}.${valid}`,
          'x'.repeat(9000),
        ),
      );
      const registrationRow = await rowOf(http.dataSource, idOf(browser));
      const refreshRow = await rowOf(http.dataSource, idOf(registered), true);
      let runs = 0;
      await fc.assert(
        fc.asyncProperty(token, async (candidate) => {
          runs++;
          const [toRegistration, toRefresh] = await Promise.all([
            postRegistration(browser).set('Secure-Session-Response', candidate),
            postRefresh(registered).set('Secure-Session-Response', candidate),
          ]);
          expect(toRegistration.status).toBeGreaterThanOrEqual(400);
          expect(toRegistration.status).toBeLessThan(500);
          expect(toRefresh.status).toBeGreaterThanOrEqual(400);
          expect(toRefresh.status).toBeLessThan(500);
        }),
        { numRuns: 120 },
      );
      // A header past Node's 16 KiB limit is refused before the app (431).
      const huge = await postRegistration(browser).set('Secure-Session-Response', 'x'.repeat(20_000));
      expect(huge.status).toBeGreaterThanOrEqual(400);
      expect(huge.status).toBeLessThan(500);
      expect(await rowOf(http.dataSource, idOf(browser))).toEqual(registrationRow);
      expect(await rowOf(http.dataSource, idOf(registered), true)).toEqual(refreshRow);
      process.stderr.write(`[device-binding] ${label}/${platform}: ${runs} fuzzed proofs, no 5xx\n`);
    });
  });
});

describe.each(TEST_DATABASES)(
  'device binding with the cache, plain ids, a global prefix and other paths on %s',
  (_label, database) => {
    describe.each(HTTP_PLATFORMS)('on %s', (_platform, platform) => {
      let db: OpenDatabase;
      let http: HttpApp;

      beforeAll(async () => {
        db = await database.open();
        http = await bootHttpApp(platform, {
          database: db.options,
          globalPrefix: 'api',
          session: {
            globalGuard: true,
            cache: { heartbeatMs: 200 },
            // The stored id is the cookie value itself: the endpoints find the row as the guard does.
            hashSessionIds: false,
            deviceBinding: { registrationPath: '/device/bind', refreshPath: '/device/renew', boundCookieName: 'bound' },
          },
          controllers: [AuthFixtureController, ProfileFixtureController],
        });
      });

      afterAll(async () => {
        await http?.close();
        await db?.dispose();
      });

      it('offers and serves the endpoints behind the prefix; cached sessions still need their bound cookie', async () => {
        const { cache } = cacheOf(http.app);
        for (let tries = 0; !cache.usable && tries < 100; tries++)
          await new Promise((resolve) => setTimeout(resolve, 20));
        expect(cache.usable).toBe(true);
        const login = await request(http.server).post('/api/auth/login').send({ userId: 'zoe' }).expect(200);
        const offer = readRegistration(login.headers['secure-session-registration']);
        expect(offer.path).toBe('/api/device/bind');
        const session = cookiePair(login);
        const device = new DbscDevice();
        // The unprefixed path is not the endpoint.
        expect(
          (
            await request(http.server)
              .post('/device/bind')
              .set('Cookie', session)
              .set('Secure-Session-Response', sfString(device.registrationProof(offer.challenge)))
          ).status,
        ).toBe(404);
        expect((await request(http.server).get('/api/me').set('Cookie', session)).status).toBe(200); // now cached
        const registered = await request(http.server)
          .post(offer.path)
          .set('Cookie', session)
          .set('Secure-Session-Response', sfString(device.registrationProof(offer.challenge)))
          .expect(200);
        expect(registered.body.refresh_url).toBe('/api/device/renew');
        const bound = cookiePair(registered, 'bound');
        // This instance forgot the unbound entry at once: the session cookie alone is refused.
        expect((await request(http.server).get('/api/me').set('Cookie', session)).status).toBe(401);
        expect((await request(http.server).get('/api/me').set('Cookie', cookies(session, bound))).status).toBe(200);
        expect((await request(http.server).get('/api/me').set('Cookie', cookies(session, bound))).status).toBe(200);
        expect((await request(http.server).get('/api/me').set('Cookie', session)).status).toBe(401);
      });
    });
  },
);
