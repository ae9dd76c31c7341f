// lastSeen with the session cache on: still at most one write per activityInterval per
// session, and that write invalidates the cached entry once (no churn per request).
import { Controller, Get, Inject, Param, Res, UseGuards } from '@nestjs/common';
import request from 'supertest';
import {
  AuthGuard,
  CurrentSession,
  Public,
  type Session,
  SessionCookies,
  type SessionCookieResponse,
} from '../../src/index.js';
import { TEST_DATABASES, type OpenDatabase } from '../support/databases.js';
import { bootHttpApp, cookiePair, digestOf, type HttpApp, recordQueries } from '../support/http-app.js';
import { cacheOf, invalidationAfter, listenUrlFor } from './support.js';

@Controller('device')
class ActivityFixtureController {
  constructor(@Inject(SessionCookies) private readonly cookies: SessionCookies) {}

  @Public()
  @Get('login/:user')
  async login(@Param('user') user: string, @Res({ passthrough: true }) response: SessionCookieResponse) {
    return { id: digestOf(await this.cookies.login(response, user)) };
  }

  @UseGuards(AuthGuard)
  @Get('me')
  me(@CurrentSession() session: Session) {
    return { lastSeen: session.lastSeen?.toISOString() ?? null };
  }
}

const writes = (queries: string[]) => queries.filter((query) => /\b(UPDATE|INSERT|DELETE)\b/i.test(query));
const lookups = (queries: string[]) => queries.filter((query) => /^SELECT "user", floor/.test(query));

/** Resolves once `done()` holds: a barrier on an event the test cannot await directly (a NOTIFY's arrival). */
async function until(done: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe.each(TEST_DATABASES)('lastSeen with the cache on, on %s', (_label, database) => {
  let db: OpenDatabase;
  let http: HttpApp;

  beforeAll(async () => {
    db = await database.open();
    http = await bootHttpApp('express', {
      database: db.options,
      session: { cache: { heartbeatMs: 200, listenUrl: listenUrlFor(database, db) } },
      controllers: [ActivityFixtureController],
    });
  });
  afterAll(async () => {
    await http?.close();
    await db?.dispose();
  });

  it('requests within activityInterval: no query at all; after it: one write, and one invalidation of the entry', async () => {
    const { listener } = cacheOf(http.app);
    const login = await request(http.server).get('/device/login/henry').expect(200);
    const { id } = login.body as { id: string };
    const me = async () =>
      (
        (await request(http.server).get('/device/me').set('Cookie', cookiePair(login)).expect(200)).body as {
          lastSeen: string;
        }
      ).lastSeen;
    await me(); // fills the cache
    const within = await recordQueries(http.dataSource, async () => {
      for (let i = 0; i < 5; i++) await me();
    });
    expect(within.queries).toEqual([]);

    // Six minutes of inactivity; that UPDATE's own NOTIFY drops the entry here.
    const dropped = invalidationAfter(listener, (payload) => payload.includes(id));
    await http.dataSource.query(`UPDATE sessions SET last_seen = now() - interval '6 minutes' WHERE id = $1`, [id]);
    await dropped;

    const invalidations: string[] = [];
    listener.onInvalidation = (payload) => {
      if (payload.includes(id)) invalidations.push(payload);
    };
    try {
      const after = await recordQueries(http.dataSource, async () => {
        const seen: string[] = [];
        for (let i = 0; i < 5; i++) seen.push(await me());
        await until(() => invalidations.length > 0, "the activity write's NOTIFY");
        for (let i = 0; i < 5; i++) seen.push(await me());
        return seen;
      });
      expect(writes(after.queries)).toHaveLength(1);
      expect(writes(after.queries)[0]).toMatch(/SET last_seen = now\(\)/);
      // The miss after the outside change, the refill after this instance's write, at most one
      // more after its NOTIFY lands: never a lookup per request.
      expect(lookups(after.queries).length).toBeGreaterThanOrEqual(2);
      expect(lookups(after.queries).length).toBeLessThanOrEqual(3);
      expect(after.queries).toHaveLength(writes(after.queries).length + lookups(after.queries).length);
      const [row] = await http.dataSource.query('SELECT last_seen FROM sessions WHERE id = $1', [id]);
      expect(new Set(after.result)).toEqual(new Set([(row.last_seen as Date).toISOString()]));

      const settled = await recordQueries(http.dataSource, async () => {
        for (let i = 0; i < 5; i++) await me();
      });
      expect(settled.queries).toEqual([]);
      expect(invalidations).toHaveLength(1);
    } finally {
      listener.onInvalidation = null;
    }
  });
});
