import { All, Controller, HttpCode, Post } from '@nestjs/common';
import request from 'supertest';
import {
  CROSS_ORIGIN_REQUEST,
  CrossOriginRequestException,
  Public,
  SessionConfigurationError,
  SkipCrossOriginCheck,
} from '../src/index.js';
import { resolveSessionOptions } from '../src/session.options.js';
import { TEST_DATABASES, type OpenDatabase } from './support/databases.js';
import {
  AuthFixtureController,
  bootHttpApp,
  CapturingLogger,
  cookiePair,
  HTTP_PLATFORMS,
  type HttpApp,
  recordQueries,
  setCookies,
} from './support/http-app.js';

/**
 * `crossOriginProtection` (issue 14): the guard refuses state-changing requests another
 * origin made, as Go 1.25's `net/http.CrossOriginProtection` does, before any query.
 * The matrix runs every method × every `Sec-Fetch-Site` value (and none) × every kind of
 * `Origin`, with and without a live session, against the expected status written out
 * below from the algorithm's description; each case is its own test.
 */
const HOST = 'app.example';
const REFUSED_MESSAGE = expect.stringContaining('Cross-origin request refused');
const TRUSTED = 'https://trusted.example';

const METHODS = ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
const SITES = [undefined, 'same-origin', 'none', 'same-site', 'cross-site'] as const;
const ORIGINS = {
  same: `http://${HOST}`,
  other: 'https://evil.example',
  trusted: TRUSTED,
  absent: undefined,
  null: 'null',
  malformed: 'http://[::1',
} as const;
type OriginKind = keyof typeof ORIGINS;

interface Case {
  method: (typeof METHODS)[number];
  site: (typeof SITES)[number];
  origin: OriginKind;
  session: boolean;
}

/** What the algorithm says, independently of the implementation: 403 with its reason, else the session decides. */
function expected({ method, site, origin, session }: Case): { status: number; reason?: string } {
  const safe = method === 'GET' || method === 'HEAD' || method === 'OPTIONS';
  if (!safe) {
    if (site !== undefined) {
      if (site !== 'same-origin' && site !== 'none' && origin !== 'trusted') {
        return { status: 403, reason: 'sec-fetch-site' };
      }
    } else if (origin !== 'absent' && origin !== 'same' && origin !== 'trusted') {
      return { status: 403, reason: 'origin-mismatch' };
    }
  }
  return { status: session ? 200 : 401 };
}

const CASES: [string, Case][] = [];
for (const method of METHODS)
  for (const site of SITES)
    for (const origin of Object.keys(ORIGINS) as OriginKind[])
      for (const session of [true, false]) {
        const title = `${method} Sec-Fetch-Site ${site ?? '(absent)'} Origin ${origin} ${session ? 'with' : 'without'} a session`;
        CASES.push([title, { method, site, origin, session }]);
      }

/** How many times a probe handler ran. */
const runs = { probe: 0, open: 0, exempt: 0 };

@Controller('probe')
class ProbeController {
  @All()
  @HttpCode(200)
  probe() {
    runs.probe++;
    return { ok: true };
  }

  @Public()
  @Post('public')
  @HttpCode(200)
  open() {
    runs.open++;
    return { ok: true };
  }

  @SkipCrossOriginCheck()
  @Post('exempt')
  @HttpCode(200)
  exempt() {
    runs.exempt++;
    return { ok: true };
  }
}

/** A request to `path` as a browser at `origin` (or no browser) would send it. */
function send(
  http: HttpApp,
  method: string,
  path: string,
  headers: { site?: string; origin?: string; cookie?: string },
) {
  const agent = request(http.server) as unknown as Record<string, (path: string) => request.Test>;
  let call = agent[method.toLowerCase()](path).set('Host', HOST);
  if (headers.site !== undefined) call = call.set('Sec-Fetch-Site', headers.site);
  if (headers.origin !== undefined) call = call.set('Origin', headers.origin);
  if (headers.cookie !== undefined) call = call.set('Cookie', headers.cookie);
  return call;
}

describe.each(HTTP_PLATFORMS)('crossOriginProtection on %s', (_platformLabel, platform) => {
  describe.each(TEST_DATABASES)('with %s', (_databaseLabel, database) => {
    let db: OpenDatabase;
    let http: HttpApp;
    let cookie: string;
    const logger = new CapturingLogger();

    beforeAll(async () => {
      db = await database.open();
      http = await bootHttpApp(platform, {
        database: db.options,
        session: { globalGuard: true, crossOriginProtection: { trustedOrigins: [TRUSTED] } },
        controllers: [ProbeController, AuthFixtureController],
        logger,
      });
      cookie = `session_id=${await http.sessions.createSessionForUser('alice')}`;
    });
    afterAll(async () => {
      await http?.close();
      await db?.dispose();
    });

    describe('the matrix', () => {
      it.each(CASES)('%s', async (_title, testCase) => {
        const want = expected(testCase);
        const before = runs.probe;
        const { result: response, queries } = await recordQueries(http.dataSource, async () =>
          send(http, testCase.method, '/probe', {
            site: testCase.site,
            origin: ORIGINS[testCase.origin],
            cookie: testCase.session ? cookie : undefined,
          }),
        );
        expect(response.status).toBe(want.status);
        expect(runs.probe - before).toBe(want.status === 200 ? 1 : 0);
        // A refused request costs no query; a cookie costs exactly the one lookup.
        expect(queries).toHaveLength(want.status !== 403 && testCase.session ? 1 : 0);
        // The refusal names its reason (a HEAD answer has no body to read).
        const readable = want.status === 403 && testCase.method !== 'HEAD';
        expect(readable ? response.body : null).toEqual(
          readable
            ? {
                statusCode: 403,
                error: 'Forbidden',
                code: CROSS_ORIGIN_REQUEST,
                reason: want.reason,
                message: REFUSED_MESSAGE,
              }
            : null,
        );
      });
    });

    it('refuses a forged logout-everywhere with a live session: 403, the sessions intact, nothing written', async () => {
      const victim = await http.sessions.createSessionForUser('bob');
      const { result: response, queries } = await recordQueries(http.dataSource, async () =>
        send(http, 'POST', '/auth/logout-everywhere', {
          site: 'same-site',
          origin: 'http://blog.app.example',
          cookie: `session_id=${victim}`,
        }),
      );
      expect(response.status).toBe(403);
      expect(response.body.code).toBe(CROSS_ORIGIN_REQUEST);
      expect(response.body.reason).toBe('sec-fetch-site');
      expect(setCookies(response)).toEqual([]);
      expect(queries).toEqual([]);
      expect(await http.sessions.getUserIdFromSessionId(victim)).toBe('bob');
      // The same request from the app's own page goes through.
      const own = await send(http, 'POST', '/auth/logout-everywhere', {
        site: 'same-origin',
        origin: `http://${HOST}`,
        cookie: `session_id=${victim}`,
      });
      expect(own.status).toBe(200);
      expect(own.body).toEqual({ deleted: 1 });
    });

    it('guards @Public() routes too (login CSRF): a forged login creates no session', async () => {
      const before = runs.open;
      const [{ count: rowsBefore }] = await http.dataSource.query('SELECT count(*)::int AS count FROM sessions');
      const forged = await send(http, 'POST', '/auth/login', { site: 'cross-site', origin: ORIGINS.other }).send({
        userId: 'mallory',
      });
      expect(forged.status).toBe(403);
      expect(setCookies(forged)).toEqual([]);
      const [{ count: rowsAfter }] = await http.dataSource.query('SELECT count(*)::int AS count FROM sessions');
      expect(rowsAfter).toBe(rowsBefore);
      await send(http, 'POST', '/probe/public', { origin: ORIGINS.null }).expect(403);
      expect(runs.open).toBe(before);
      // From the app itself, or from a client that is not a browser: in.
      const own = await send(http, 'POST', '/auth/login', { site: 'same-origin', origin: ORIGINS.same }).send({
        userId: 'alice',
      });
      expect(own.status).toBe(200);
      expect(cookiePair(own)).toMatch(/^session_id=/);
      await send(http, 'POST', '/probe/public', {}).expect(200);
      expect(runs.open).toBe(before + 1);
    });

    it('lets @SkipCrossOriginCheck() routes through, and still checks their session', async () => {
      const before = runs.exempt;
      await send(http, 'POST', '/probe/exempt', { site: 'cross-site', origin: ORIGINS.other, cookie }).expect(200);
      await send(http, 'POST', '/probe/exempt', { site: 'cross-site', origin: ORIGINS.other }).expect(401);
      expect(runs.exempt).toBe(before + 1);
    });

    it('passes an Origin of the same host on another scheme when Sec-Fetch-Site is absent (as Go: HSTS closes it)', async () => {
      await send(http, 'POST', '/probe', { origin: `https://${HOST}`, cookie }).expect(200);
      await send(http, 'POST', '/probe', { origin: `http://${HOST}:8080`, cookie }).expect(403);
      await send(http, 'POST', '/probe', { origin: `http://APP.example`, cookie }).expect(200);
    });

    it('logs each refusal reason once, naming method, path and headers, never the cookie or the query string', async () => {
      const text = logger.text();
      const warnings = logger.lines.filter((line) => line.level === 'warn' && line.message.includes('cross-origin'));
      // The matrix refused hundreds of requests for both reasons.
      expect(warnings).toHaveLength(2);
      expect(text).toContain('(sec-fetch-site: Sec-Fetch-Site');
      expect(text).toContain('(origin-mismatch: Sec-Fetch-Site none');
      expect(text).toContain('"/probe"');
      expect(text).not.toContain(cookie.slice('session_id='.length));
      await send(http, 'POST', '/probe?token=secret', { site: 'cross-site', cookie }).expect(403);
      expect(logger.text()).toBe(text);
    });
  });
});

describe.each(HTTP_PLATFORMS)('crossOriginProtection: false on %s', (_platformLabel, platform) => {
  let db: OpenDatabase;
  let http: HttpApp;
  beforeAll(async () => {
    db = await TEST_DATABASES[0][1].open();
    http = await bootHttpApp(platform, {
      database: db.options,
      session: { globalGuard: true, crossOriginProtection: false },
      controllers: [ProbeController],
    });
  });
  afterAll(async () => {
    await http?.close();
    await db?.dispose();
  });

  it('lets a cross-site POST reach the session check', async () => {
    const cookie = `session_id=${await http.sessions.createSessionForUser('alice')}`;
    await send(http, 'POST', '/probe', { site: 'cross-site', origin: ORIGINS.other, cookie }).expect(200);
    await send(http, 'POST', '/probe', { site: 'cross-site', origin: ORIGINS.other }).expect(401);
  });
});

describe('crossOriginProtection options', () => {
  it('is on by default, with no trusted origin', () => {
    expect(resolveSessionOptions({}).crossOriginProtection).toEqual({ trustedOrigins: new Set() });
    expect(resolveSessionOptions({ crossOriginProtection: true }).crossOriginProtection).toEqual({
      trustedOrigins: new Set(),
    });
    expect(resolveSessionOptions({ crossOriginProtection: false }).crossOriginProtection).toBeNull();
  });

  it('stores trusted origins as browsers send them (lower case, no default port)', () => {
    const { crossOriginProtection } = resolveSessionOptions({
      crossOriginProtection: { trustedOrigins: ['HTTPS://Admin.Example.com:443', 'http://localhost:3000'] },
    });
    expect(crossOriginProtection).toEqual({
      trustedOrigins: new Set(['https://admin.example.com', 'http://localhost:3000']),
    });
  });

  it.each([
    ['a path', 'https://app.example.com/'],
    ['no scheme', 'app.example.com'],
    ['a query', 'https://app.example.com?x=1'],
    ['credentials', 'https://user:pw@app.example.com'],
    ['"null"', 'null'],
    ['a bad port', 'https://app.example.com:99999'],
  ])('refuses a trusted origin with %s at startup, naming the fix', (_what, origin) => {
    expect(() => resolveSessionOptions({ crossOriginProtection: { trustedOrigins: [origin] } })).toThrow(
      SessionConfigurationError,
    );
    expect(() => resolveSessionOptions({ crossOriginProtection: { trustedOrigins: [origin] } })).toThrow(
      /scheme:\/\/host\[:port\]/,
    );
  });

  it('refuses a value that is neither a boolean nor an object', () => {
    expect(() => resolveSessionOptions({ crossOriginProtection: 'yes' as never })).toThrow(/true, false or/);
    expect(() =>
      resolveSessionOptions({ crossOriginProtection: { trustedOrigins: 'https://a.example' as never } }),
    ).toThrow(/must be an array/);
  });

  it('answers with a CrossOriginRequestException users can catch in filters', () => {
    const exception = new CrossOriginRequestException('origin-mismatch');
    expect(exception.getStatus()).toBe(403);
    expect(exception.reason).toBe('origin-mismatch');
  });
});
