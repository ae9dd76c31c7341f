import type { AddressInfo } from 'node:net';
import { Controller, Get, Inject, Param, Req, Res, UseGuards } from '@nestjs/common';
import type { INestApplicationContext } from '@nestjs/common';
import { getDataSourceToken } from '@nestjs/typeorm';
import request from 'supertest';
import type { DataSource } from 'typeorm';
import {
  AuthGuard,
  CurrentSession,
  Public,
  type Session,
  SessionConfigurationError,
  SessionCookies,
  type SessionCookieResponse,
  type SessionModuleForRootOptions,
  type SessionRequest,
  SessionService,
} from '../src/index.js';
import { cleanIp, cleanUserAgent, truncateIp } from '../src/session-device.js';
import { resolveSessionOptions } from '../src/session.options.js';
import { RawHttpClient } from './hardening/raw-http.js';
import { compileSessionModule } from './support/apps.js';
import { TEST_DATABASES, type OpenDatabase } from './support/databases.js';
import { bootHttpApp, cookiePair, digestOf, HTTP_PLATFORMS, type HttpApp, recordQueries } from './support/http-app.js';

const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;
const CHROME_LINUX =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36';

/** A platform request as the fixture reads its address: Express `req.ip`, Fastify `request.ip`. */
type PlatformRequest = SessionRequest & { ip?: string };

/** Logs in from a GET (so a raw client can send any header bytes) and says which address the platform saw. */
@Controller('device')
class DeviceFixtureController {
  constructor(@Inject(SessionCookies) private readonly cookies: SessionCookies) {}

  @Public()
  @Get('login/:user')
  async login(
    @Param('user') user: string,
    @Req() incoming: PlatformRequest,
    @Res({ passthrough: true }) response: SessionCookieResponse,
  ) {
    // Today's two-argument call: the device comes from the request the response belongs to.
    const cookieValue = await this.cookies.login(response, user);
    return { platformIp: incoming.ip, id: digestOf(cookieValue) };
  }

  @Public()
  @Get('login-explicit/:user')
  async loginExplicit(
    @Param('user') user: string,
    @Req() incoming: PlatformRequest,
    @Res({ passthrough: true }) response: SessionCookieResponse,
  ) {
    const cookieValue = await this.cookies.login(response, user, incoming);
    return { platformIp: incoming.ip, id: digestOf(cookieValue) };
  }

  @UseGuards(AuthGuard)
  @Get('me')
  me(@CurrentSession() session: Session) {
    return { userAgent: session.userAgent, ip: session.ip, lastSeen: session.lastSeen?.toISOString() ?? null };
  }
}

interface DeviceRow {
  user_agent: string | null;
  ip: string | null;
  last_seen: Date | null;
  created: Date;
  expires: Date;
  now: Date;
}

async function storedRow(dataSource: DataSource, id: string): Promise<DeviceRow> {
  const [row] = await dataSource.query(
    'SELECT user_agent, ip, last_seen, created, expires, now() AS now FROM sessions WHERE id = $1',
    [id],
  );
  return row as DeviceRow;
}

/** Statements that write: what `activityInterval` bounds. */
function writes(queries: string[]): string[] {
  return queries.filter((query) => /\b(UPDATE|INSERT|DELETE)\b/i.test(query));
}

describe('the device helpers', () => {
  it('truncates IPv4 to /24, IPv6 to /48, IPv4-mapped IPv6 to the /24 of its IPv4 part, and drops non-addresses', () => {
    expect(truncateIp('203.0.113.77')).toBe('203.0.113.0');
    expect(truncateIp('2001:db8:85a3:8d3:1319:8a2e:370:7348')).toBe('2001:db8:85a3::');
    expect(truncateIp('2001:db8::1')).toBe('2001:db8::');
    expect(truncateIp('::ffff:203.0.113.77')).toBe('::ffff:203.0.113.0');
    expect(truncateIp('0:0:0:0:0:ffff:198.51.100.7')).toBe('::ffff:198.51.100.0');
    expect(truncateIp('fe80::1%eth0')).toBe('fe80::');
    expect(truncateIp('::1')).toBe('::');
    for (const bad of ['not-an-ip', '203.0.113.7, 10.0.0.1', '', '1.2.3.4.5', 42, null, undefined]) {
      expect(truncateIp(bad)).toBeNull();
      expect(cleanIp(bad)).toBeNull();
    }
    expect(cleanIp('2001:db8::1')).toBe('2001:db8::1');
  });

  it('cleans user agents: controls and bidi overrides removed, cut to 512 bytes on a code point, never throws', () => {
    expect(cleanUserAgent(CHROME_LINUX)).toBe(CHROME_LINUX);
    expect(cleanUserAgent('a\u0000b\r\nc\u001b[31md\u202Ee\u0085f')).toBe('abc[31mdef');
    expect(cleanUserAgent('x'.repeat(100 * 1024))).toBe('x'.repeat(512));
    // 'é' is 2 bytes, '😀' 4: the cut never splits one.
    expect(cleanUserAgent('é'.repeat(1000))).toBe('é'.repeat(256));
    const emoji = cleanUserAgent('a' + '😀'.repeat(300))!;
    expect(emoji).toBe('a' + '😀'.repeat(127));
    expect(Buffer.byteLength(emoji)).toBe(509);
    expect(cleanUserAgent('ok\uD800')).toBe('ok\uFFFD');
    expect(cleanUserAgent('\u0000\u0001 ')).toBeNull();
    expect(cleanUserAgent(undefined)).toBeNull();
    expect(cleanUserAgent(['array'])).toBeNull();
  });

  it('refuses bad deviceInfo, activityInterval and maxSessionsPerUser at startup, naming the fix', () => {
    const bad: [SessionModuleForRootOptions, RegExp][] = [
      [{ deviceInfo: { ip: 'partial' as 'full' } }, /deviceInfo\.ip must be 'full', 'truncated' or false/],
      [{ deviceInfo: { userAgent: 'yes' as unknown as boolean } }, /deviceInfo\.userAgent must be true or false/],
      [{ activityInterval: 0 }, /activityInterval must be a positive whole number of milliseconds, or false/],
      [{ activityInterval: 1.5 }, /activityInterval/],
      [{ maxSessionsPerUser: 0 }, /maxSessionsPerUser must be a positive whole number/],
      [{ maxSessionsPerUser: 2.5 }, /maxSessionsPerUser/],
    ];
    for (const [options, message] of bad) {
      expect(() => resolveSessionOptions(options)).toThrow(SessionConfigurationError);
      expect(() => resolveSessionOptions(options)).toThrow(message);
    }
    expect(resolveSessionOptions({}).deviceInfo).toEqual({ ip: 'full', userAgent: true });
    expect(resolveSessionOptions({}).activityInterval).toBe(5 * MINUTE);
    expect(resolveSessionOptions({ deviceInfo: false }).deviceInfo).toEqual({ ip: false, userAgent: false });
    expect(resolveSessionOptions({ activityInterval: false }).activityInterval).toBeNull();
  });
});

describe.each(TEST_DATABASES)('device info on %s', (_label, database) => {
  let db: OpenDatabase;
  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(() => db.dispose());

  describe.each(HTTP_PLATFORMS)('over %s', (_platformLabel, platform) => {
    let http: HttpApp;
    /** One app per option set for the tests inside `fn` (booting is the slow part). */
    function withApp(title: string, session: SessionModuleForRootOptions, trustProxy: boolean, fn: () => void) {
      describe(`${title}`, () => {
        beforeAll(async () => {
          http = await bootHttpApp(platform, {
            database: db.options,
            session,
            trustProxy,
            controllers: [DeviceFixtureController],
          });
        });
        afterAll(() => http.close());
        afterEach(() => http.dataSource.query('DELETE FROM sessions'));
        fn();
      });
    }

    withApp('default options', {}, false, () => {
      it('login stores the user agent and the address the platform reports, ignoring X-Forwarded-For when no proxy is trusted', async () => {
        const response = await request(http.server)
          .get('/device/login/alice')
          .set('User-Agent', CHROME_LINUX)
          .set('X-Forwarded-For', '203.0.113.9')
          .expect(200);
        const { platformIp, id } = response.body as { platformIp: string; id: string };
        expect(['127.0.0.1', '::ffff:127.0.0.1']).toContain(platformIp);
        const row = await storedRow(http.dataSource, id);
        expect(row.user_agent).toBe(CHROME_LINUX);
        expect(row.ip).toBe(platformIp);
        expect(row.last_seen).toEqual(row.created);
        // The guard hands the same fields to handlers.
        const me = await request(http.server).get('/device/me').set('Cookie', cookiePair(response)).expect(200);
        expect(me.body).toEqual({ userAgent: CHROME_LINUX, ip: platformIp, lastSeen: row.created.toISOString() });
        // rotate keeps them.
        const cookieValue = cookiePair(response).split('=')[1];
        const rotated = (await http.sessions.rotate(cookieValue))!;
        const after = await storedRow(http.dataSource, digestOf(rotated));
        expect([after.user_agent, after.ip, after.last_seen]).toEqual([row.user_agent, row.ip, row.last_seen]);
      });

      it('a 100 KB user agent with control characters and invalid UTF-8 is stored cut and clean, never an error', async () => {
        const server = http.server;
        // Let the header reach the app: Node's parser refuses 100 KB headers and control bytes by default.
        (server as { maxHeaderSize?: number }).maxHeaderSize = 256 * 1024;
        (server as { insecureHTTPParser?: boolean }).insecureHTTPParser = true;
        if (!server.listening) await http.app.listen(0, '127.0.0.1');
        const client = new RawHttpClient((server.address() as AddressInfo).port);
        try {
          const huge = Buffer.concat([
            Buffer.from('User-Agent: Evil\x01\x7f/1.0 \xc3\x28\xff\xfe (', 'latin1'),
            Buffer.alloc(100 * 1024, 'A'),
            Buffer.from(')', 'latin1'),
          ]);
          const response = await client.get('/device/login/erin', [huge]);
          expect(response.status).toBe(200);
          const { id } = JSON.parse(response.body) as { id: string };
          const row = await storedRow(http.dataSource, id);
          expect(Buffer.byteLength(row.user_agent!)).toBeLessThanOrEqual(512);
          expect(row.user_agent!.startsWith('Evil/1.0 ')).toBe(true);
          expect(
            [...row.user_agent!].filter((char) => char.charCodeAt(0) < 0x20 || char.charCodeAt(0) === 0x7f),
          ).toEqual([]);
          expect(row.user_agent).toMatch(/A{400}$/);
        } finally {
          client.close();
        }
      });

      it('lastSeen: no write for requests within activityInterval (default 5 min), exactly one after it', async () => {
        const login = await request(http.server).get('/device/login/frank').expect(200);
        const { id } = login.body as { id: string };
        const cookie = cookiePair(login);
        const me = () => request(http.server).get('/device/me').set('Cookie', cookie).expect(200);
        await http.dataSource.query(`UPDATE sessions SET last_seen = now() - interval '4 minutes' WHERE id = $1`, [id]);
        const within = await recordQueries(http.dataSource, async () => {
          for (let i = 0; i < 5; i++) await me();
        });
        expect(within.queries).toHaveLength(5); // the lookups
        expect(writes(within.queries)).toEqual([]);

        await http.dataSource.query(`UPDATE sessions SET last_seen = now() - interval '6 minutes' WHERE id = $1`, [id]);
        const after = await recordQueries(http.dataSource, async () => {
          const seen: string[] = [];
          for (let i = 0; i < 5; i++) seen.push((await me()).body.lastSeen);
          return seen;
        });
        expect(after.queries).toHaveLength(6);
        expect(writes(after.queries)).toHaveLength(1);
        expect(writes(after.queries)[0]).toMatch(/UPDATE "sessions" SET last_seen = now\(\)/);
        const row = await storedRow(http.dataSource, id);
        expect(row.now.getTime() - row.last_seen!.getTime()).toBeLessThan(MINUTE);
        // The request that wrote sees the new value, and so do the next ones.
        expect(new Set(after.result)).toEqual(new Set([row.last_seen!.toISOString()]));
      });
    });

    withApp('the proxy trusted', {}, true, () => {
      it('stores the client address from X-Forwarded-For as the platform resolves it', async () => {
        const login = async (forwardedFor: string, path = 'login') => {
          const response = await request(http.server)
            .get(`/device/${path}/bob`)
            .set('X-Forwarded-For', forwardedFor)
            .expect(200);
          const { platformIp, id } = response.body as { platformIp: string; id: string };
          return { platformIp, row: await storedRow(http.dataSource, id) };
        };
        const v4 = await login('203.0.113.9, 10.0.0.1');
        expect(v4.platformIp).toBe('203.0.113.9');
        expect(v4.row.ip).toBe('203.0.113.9');
        expect(v4.row.user_agent).toBeNull(); // supertest sends none
        expect((await login('2001:db8:85a3:8d3::1', 'login-explicit')).row.ip).toBe('2001:db8:85a3:8d3::1');
        // With every proxy trusted the client writes X-Forwarded-For: what is not an address is not stored.
        expect((await login('<script>alert(1)</script>')).row.ip).toBeNull();
      });
    });

    withApp("deviceInfo { ip: 'truncated' }, the proxy trusted", { deviceInfo: { ip: 'truncated' } }, true, () => {
      it('stores networks only: IPv4 /24, IPv6 /48, IPv4-mapped IPv6', async () => {
        const storedIp = async (forwardedFor?: string) => {
          let call = request(http.server).get('/device/login/carol');
          if (forwardedFor) call = call.set('X-Forwarded-For', forwardedFor);
          const { platformIp, id } = (await call.expect(200)).body as { platformIp: string; id: string };
          return { platformIp, ip: (await storedRow(http.dataSource, id)).ip };
        };
        expect((await storedIp('203.0.113.9')).ip).toBe('203.0.113.0');
        expect((await storedIp('2001:db8:85a3:8d3::1')).ip).toBe('2001:db8:85a3::');
        expect((await storedIp('::ffff:198.51.100.7')).ip).toBe('::ffff:198.51.100.0');
        const direct = await storedIp();
        expect(direct.ip).toBe(direct.platformIp === '127.0.0.1' ? '127.0.0.0' : '::ffff:127.0.0.0');
      });
    });

    withApp('rolling, ttl 1 h', { rolling: true, ttl: HOUR }, false, () => {
      it('renewal and activity due together: one statement moves both', async () => {
        const login = await request(http.server).get('/device/login/gina').expect(200);
        const { id } = login.body as { id: string };
        await http.dataSource.query(
          `UPDATE sessions SET created = now() - interval '40 minutes', expires = now() + interval '20 minutes',
                               last_seen = now() - interval '10 minutes' WHERE id = $1`,
          [id],
        );
        const { queries } = await recordQueries(http.dataSource, () =>
          request(http.server).get('/device/me').set('Cookie', cookiePair(login)).expect(200),
        );
        expect(queries).toHaveLength(2);
        expect(writes(queries)).toHaveLength(1);
        expect(writes(queries)[0]).toMatch(/SET expires = LEAST\(.*\), last_seen = now\(\)/);
        const row = await storedRow(http.dataSource, id);
        expect(row.now.getTime() - row.last_seen!.getTime()).toBeLessThan(MINUTE);
        expect(row.expires.getTime() - row.now.getTime()).toBeGreaterThan(59 * MINUTE);
      });
    });
  });

  describe('SessionService', () => {
    let app: INestApplicationContext;
    let sessions: SessionService;
    let dataSource: DataSource;
    async function boot(options: SessionModuleForRootOptions) {
      app = await (await compileSessionModule(db.options, options)).init();
      sessions = app.get(SessionService);
      dataSource = app.get(getDataSourceToken());
    }
    afterEach(async () => {
      await dataSource.query('DELETE FROM sessions');
      await app.close();
    });

    it('createSessionForUser(userId, { userAgent, ip }) stores them; the one-argument call still works', async () => {
      await boot({});
      const value = await sessions.createSessionForUser('u', { userAgent: CHROME_LINUX, ip: '198.51.100.7' });
      const session = (await sessions.get(value))!;
      expect(session.userAgent).toBe(CHROME_LINUX);
      expect(session.ip).toBe('198.51.100.7');
      expect(session.lastSeen).toEqual(session.created);
      const bare = (await sessions.get(await sessions.createSessionForUser('u')))!;
      expect([bare.userAgent, bare.ip]).toEqual([null, null]);
      const issued = await sessions.issueSession('u', { userAgent: 'x'.repeat(100 * 1024), ip: 'nonsense' });
      expect(issued.session.userAgent).toBe('x'.repeat(512));
      expect(issued.session.ip).toBeNull();
    });

    it('deviceInfo false stores neither', async () => {
      await boot({ deviceInfo: false });
      const session = (await sessions.issueSession('u', { userAgent: CHROME_LINUX, ip: '198.51.100.7' })).session;
      expect([session.userAgent, session.ip]).toEqual([null, null]);
      const [row] = await dataSource.query('SELECT user_agent, ip FROM sessions');
      expect(row).toEqual({ user_agent: null, ip: null });
    });

    it('{ userAgent: false } keeps only the address; activityInterval false never moves lastSeen', async () => {
      await boot({ deviceInfo: { userAgent: false }, activityInterval: false });
      const value = await sessions.createSessionForUser('u', { userAgent: CHROME_LINUX, ip: '198.51.100.7' });
      const stored = (await sessions.get(value))!;
      expect([stored.userAgent, stored.ip]).toEqual([null, '198.51.100.7']);
      await dataSource.query(`UPDATE sessions SET last_seen = now() - interval '1 day'`);
      const { result, queries } = await recordQueries(dataSource, () => sessions.validate(value));
      expect(result.valid).toBe(true);
      expect(queries).toHaveLength(1);
      expect(writes(queries)).toEqual([]);
    });

    it('listByUserId returns userAgent, ip and lastSeen, most recently used first', async () => {
      await boot({});
      const phone = await sessions.createSessionForUser('u', { userAgent: 'Phone', ip: '203.0.113.1' });
      const laptop = await sessions.createSessionForUser('u', { userAgent: 'Laptop', ip: '203.0.113.2' });
      const tablet = await sessions.createSessionForUser('u', { userAgent: 'Tablet', ip: '203.0.113.3' });
      const legacy = await sessions.createSessionForUser('u');
      const set = (value: string, sql: string) =>
        dataSource.query(`UPDATE sessions SET ${sql} WHERE id = $1`, [digestOf(value)]);
      // The phone, oldest login, was used last; a row from before the column orders by created.
      await set(phone, `created = now() - interval '3 days', last_seen = now() - interval '1 minute'`);
      await set(laptop, `created = now() - interval '2 days', last_seen = now() - interval '2 hours'`);
      await set(tablet, `created = now() - interval '1 day', last_seen = now() - interval '1 hour'`);
      await set(legacy, `created = now() - interval '30 minutes', last_seen = NULL`);
      const listed = await sessions.listByUserId('u');
      expect(listed.map((session) => session.userAgent)).toEqual(['Phone', null, 'Tablet', 'Laptop']);
      expect(listed[0]).toMatchObject({ ip: '203.0.113.1', userAgent: 'Phone' });
      expect(listed[0].lastSeen).toBeInstanceOf(Date);
      expect(listed[1].lastSeen).toBeNull();
      // getByUserId keeps its meaning: the most recently created.
      expect((await sessions.getByUserId('u'))!.id).toBe(digestOf(legacy));
    });

    it('maxSessionsPerUser: a login beyond it deletes the least recently used (not the oldest), expired ones too', async () => {
      await boot({ maxSessionsPerUser: 3 });
      const [a, b, c] = [
        await sessions.createSessionForUser('u'),
        await sessions.createSessionForUser('u'),
        await sessions.createSessionForUser('u'),
      ];
      const other = await sessions.createSessionForUser('v');
      const setSeen = (value: string, minutesAgo: number) =>
        dataSource.query(`UPDATE sessions SET last_seen = now() - $2::float8 * interval '1 minute' WHERE id = $1`, [
          digestOf(value),
          minutesAgo,
        ]);
      await setSeen(a, 1); // the oldest login, used a minute ago: kept
      await setSeen(b, 30); // least recently used: deleted
      await setSeen(c, 10);
      const d = await sessions.createSessionForUser('u');
      const ids = async (user: string) =>
        ((await dataSource.query('SELECT id FROM sessions WHERE "user" = $1 ORDER BY id', [user])) as { id: string }[])
          .map((row) => row.id)
          .sort();
      expect(await ids('u')).toEqual([a, c, d].map(digestOf).sort());
      expect(await ids('v')).toEqual([digestOf(other)]);
      // An expired session never counts as one of the n, and the login sweeps it away.
      await dataSource.query(`UPDATE sessions SET expires = now() - interval '1 second' WHERE id = $1`, [digestOf(a)]);
      const e = await sessions.createSessionForUser('u');
      expect(await ids('u')).toEqual([c, d, e].map(digestOf).sort());
    });

    it('50 concurrent logins of one user with maxSessionsPerUser 3 leave exactly the 3 most recent; other users untouched', async () => {
      await boot({ maxSessionsPerUser: 3 });
      const bystanders = [await sessions.createSessionForUser('v'), await sessions.createSessionForUser('v')];
      const logins = await Promise.all([
        ...Array.from({ length: 50 }, (_, i) => sessions.issueSession('u', { userAgent: `Browser ${i}` })),
        ...Array.from({ length: 10 }, () => sessions.issueSession('w')),
      ]);
      const ofU = logins.filter((issued) => issued.session.user === 'u');
      const live: { id: string; user: string }[] = await dataSource.query(
        'SELECT id, "user" FROM sessions WHERE expires > now() ORDER BY "user", id',
      );
      const survivors = live.filter((row) => row.user === 'u').map((row) => row.id);
      expect(survivors).toHaveLength(3);
      // The 3 most recent logins: none of the 47 deleted was created after any survivor
      // (created is the statement's time, taken after the user's lock; read back to the ms).
      const createdOf = (issued: (typeof ofU)[number]) => issued.session.created.getTime();
      const kept = ofU.filter((issued) => survivors.includes(issued.session.id));
      const deleted = ofU.filter((issued) => !survivors.includes(issued.session.id));
      expect(kept).toHaveLength(3);
      expect(Math.max(...deleted.map(createdOf))).toBeLessThanOrEqual(Math.min(...kept.map(createdOf)));
      expect(live.filter((row) => row.user === 'w')).toHaveLength(3);
      expect(live.filter((row) => row.user === 'v').map((row) => row.id)).toEqual(bystanders.map(digestOf).sort());
    }, 60_000);
  });
});
