import pg from 'pg';
import request from 'supertest';
import { bootHttpApp, cookiePair, type HttpApp } from '../support/http-app.js';
import { PGBOUNCER_URL, TEST_DATABASES, type OpenDatabase } from '../support/databases.js';
import { describeEachWhere } from '../support/requirements.js';

/**
 * Case 8 of issue 7, PgBouncer: Debian's pgbouncer in transaction pooling mode in
 * front of the local PostgreSQL, started by the jest global setup
 * (test/support/pgbouncer.ts). Every suite that runs on `TEST_DATABASES` runs through it
 * as its `pgbouncer` database (the README's Reliability row 8 lists them); this spec checks the
 * harness is what it claims: transaction pooling, for real, and the package working
 * across server connections that change under it.
 */
const THROUGH_PGBOUNCER = TEST_DATABASES.filter(([, database]) => database.pooler === 'pgbouncer');

describeEachWhere(THROUGH_PGBOUNCER, 'pgbouncer', 'PgBouncer in front of PostgreSQL (%s)', (_label, database) => {
  let db: OpenDatabase;
  const clients: pg.Client[] = [];
  const connect = async (url: string) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.end()));
    await db.dispose();
  });

  it('runs in transaction pooling mode', async () => {
    const adminConsole = await connect(new URL('/pgbouncer', PGBOUNCER_URL!).toString());
    const config = await adminConsole.query('SHOW CONFIG');
    const setting = (key: string) => config.rows.find((row) => row.key === key)?.value;
    expect(setting('pool_mode')).toBe('transaction');
    // No prepared statements carried between server connections: PgBouncer 1.21+ reports the
    // harness's `max_prepared_statements = 0`; older versions lack the setting and never carry them.
    expect(setting('max_prepared_statements') ?? '0').toBe('0');
    expect(new URL(db.url!).port).toBe(new URL(PGBOUNCER_URL!).port);
  });

  it("moves a client's statements between server connections (what transaction pooling means)", async () => {
    const [alice, bob] = [await connect(db.url!), await connect(db.url!)];
    const backend = async (client: pg.Client) => (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    const first = await backend(alice);
    // Bob's open transaction takes the server connection Alice just released...
    await bob.query('BEGIN');
    expect(await backend(bob)).toBe(first);
    // ...so Alice's next statement runs on another one: nothing session-scoped can follow her.
    const second = await backend(alice);
    await bob.query('COMMIT');
    expect(second).not.toBe(first);
  });

  describe('the package through it', () => {
    let http: HttpApp;
    beforeAll(async () => {
      http = await bootHttpApp('express', {
        database: db.options,
        // Few client connections, many concurrent requests: statements interleave across server connections.
        typeorm: { extra: { max: 5 } },
        session: { globalGuard: true, rolling: true, ttl: 60_000 },
      });
    });
    afterAll(() => http.close());

    it('logs in, validates, renews, rotates and logs out under concurrent load', async () => {
      const users = Array.from({ length: 40 }, (_, i) => `pooled-${i}`);
      const outcomes = await Promise.all(
        users.map(async (user) => {
          const cookie = cookiePair(await request(http.server).post('/auth/login').send({ userId: user }).expect(200));
          const me = await request(http.server).get('/me').set('Cookie', cookie).expect(200);
          // Half the ttl gone: the next request renews the session.
          await http.dataSource.query(`UPDATE sessions SET expires = now() + interval '10 seconds' WHERE "user" = $1`, [
            user,
          ]);
          const renewed = await request(http.server).get('/me').set('Cookie', cookie).expect(200);
          const rotated = await request(http.server).post('/auth/rotate').set('Cookie', cookie).expect(200);
          const newCookie = cookiePair(rotated);
          await request(http.server).get('/me').set('Cookie', cookie).expect(401);
          await request(http.server).post('/auth/logout').set('Cookie', newCookie).expect(200);
          await request(http.server).get('/me').set('Cookie', newCookie).expect(401);
          return {
            user: me.body.user.id,
            renewed: (renewed.headers['set-cookie'] ?? []).length === 1,
            rotated: rotated.body.rotated,
          };
        }),
      );
      expect(outcomes).toEqual(users.map((user) => ({ user, renewed: true, rotated: true })));
      expect(await http.dataSource.query('SELECT count(*)::int AS n FROM sessions')).toEqual([{ n: 0 }]);
    });
  });
});
