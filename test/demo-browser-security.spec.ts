// The demo (example/) in Chromium against the two protections of issue 14: forged requests
// from a page of another origin are refused (crossOriginProtection), and deleting the
// account needs a recent login (@RequireRecentLogin) with a "confirm your password" step.
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { chromium, type Browser, type BrowserContext, type Page, type Response } from 'playwright-core';
import { CHROMIUM_PATH, describeWhere } from './support/requirements.js';
import { CHROMIUM_LAUNCH_OPTIONS, compileDemo, DemoServer, type DemoStorage, STORAGES } from './support/demo-server.js';

// The one browser global the page functions below touch (the project compiles without the DOM lib).
declare const document: { title: string };

const COOKIE = 'session_id';

/**
 * A second origin on the same host: `http://127.0.0.1:<another port>`. Same site as the
 * demo (a site ignores the port), so Chromium sends the demo's `SameSite=Lax` cookie with
 * its posts: only the origin check stands between its pages and the demo's actions.
 */
class OtherOrigin {
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(demoUrl: () => string): Promise<OtherOrigin> {
    const server = createServer((request, response) => {
      const target = `${demoUrl()}${new URL(request.url ?? '/', 'http://x').searchParams.get('action') ?? '/'}`;
      const pages: Record<string, string> = {
        // A hidden form that submits itself as soon as the page loads: the classic forgery.
        '/form': `<form method="post" action="${target}"><input name="x" value="1"></form>
          <script>document.forms[0].submit()</script>`,
        // A credentialed cross-origin fetch: sent without a preflight (a "simple" request).
        '/fetch': `<script>fetch(${JSON.stringify(target)}, { method: 'POST', credentials: 'include' })
          .then((r) => { document.title = 'answered ' + r.status; })
          .catch(() => { document.title = 'failed'; });</script>`,
      };
      const page = pages[new URL(request.url ?? '/', 'http://x').pathname];
      response.writeHead(page ? 200 : 404, { 'content-type': 'text/html' });
      response.end(page ? `<!doctype html><title>other origin</title>${page}` : '');
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const { port } = server.address() as AddressInfo;
    return new OtherOrigin(server, `http://127.0.0.1:${port}`);
  }

  close(): Promise<void> {
    return new Promise((done) => this.server.close(() => done()));
  }
}

describeWhere(existsSync(CHROMIUM_PATH), 'chromium', 'the demo against forged requests and stale logins', () => {
  let browser: Browser;

  beforeAll(async () => {
    compileDemo();
    browser = await chromium.launch(CHROMIUM_LAUNCH_OPTIONS);
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
  });

  describe.each(STORAGES)('in Chromium on %s', (kind, openStorage) => {
    let storage: DemoStorage;
    let server: DemoServer;
    let other: OtherOrigin;
    let userCount = 0;
    const contexts: BrowserContext[] = [];

    beforeAll(async () => {
      storage = await openStorage();
      server = await DemoServer.start(storage.env);
      other = await OtherOrigin.start(() => server.url);
    }, 90_000);
    afterEach(async () => {
      await Promise.all(contexts.splice(0).map((context) => context.close()));
    });
    afterAll(async () => {
      await other?.close();
      await server?.stop();
      await storage?.dispose();
    }, 30_000);

    async function newDevice(): Promise<Page> {
      const context = await browser.newContext();
      contexts.push(context);
      return context.newPage();
    }

    async function signedUpDevice(password = 'correct horse'): Promise<{ page: Page; username: string }> {
      userCount += 1;
      const username = `sec${userCount}_${kind}`.slice(0, 20);
      const page = await newDevice();
      await page.goto(`${server.url}/signup`);
      await page.getByLabel('Username').fill(username);
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Create account' }).click();
      await page.waitForURL(`${server.url}/?notice=signed-up`);
      return { page, username };
    }

    async function logIn(page: Page, username: string, password = 'correct horse'): Promise<void> {
      await page.goto(`${server.url}/login`);
      await page.getByLabel('Username').fill(username);
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.waitForLoadState();
    }

    async function sessionCookie(page: Page): Promise<string | undefined> {
      return (await page.context().cookies(server.url)).find((cookie) => cookie.name === COOKIE)?.value;
    }

    /** How many sessions the home page of `page` lists (and that it is still signed in). */
    async function listedSessions(page: Page): Promise<number> {
      await page.goto(`${server.url}/`);
      expect(page.url()).toBe(`${server.url}/`);
      return page.locator('tbody tr').count();
    }

    /** Opens a page of the other origin that posts to the demo's `action`; returns the demo's answer. */
    async function forge(page: Page, how: 'form' | 'fetch', action: string): Promise<Response> {
      const answered = page.waitForResponse((response) => response.url() === `${server.url}${action}`);
      await page.goto(`${other.url}/${how}?action=${encodeURIComponent(action)}`);
      return answered;
    }

    /**
     * Every request `page` sends from now on, with the headers Chromium really sent (cookies
     * included) and the status it got, read from the devtools protocol: Playwright reports a
     * fetch that failed CORS as failed, without its response.
     */
    async function watchWire(page: Page) {
      type Exchange = { url: string; requestHeaders?: Record<string, string>; status?: number };
      const exchanges = new Map<string, Exchange>();
      const waiters: { url: string; done: (exchange: Exchange) => void }[] = [];
      const update = (id: string, change: Partial<Exchange>) => {
        const exchange = Object.assign(exchanges.get(id) ?? { url: '' }, change);
        exchanges.set(id, exchange);
        // ExtraInfo events may come before or after the others: an exchange is complete once all three arrived.
        if (exchange.url && exchange.requestHeaders && exchange.status !== undefined) {
          for (const waiter of waiters.filter((candidate) => candidate.url === exchange.url)) waiter.done(exchange);
        }
      };
      const cdp = await page.context().newCDPSession(page);
      cdp.on('Network.requestWillBeSent', (event) => update(event.requestId, { url: event.request.url }));
      cdp.on('Network.requestWillBeSentExtraInfo', (event) =>
        update(event.requestId, { requestHeaders: event.headers as Record<string, string> }),
      );
      cdp.on('Network.responseReceivedExtraInfo', (event) => update(event.requestId, { status: event.statusCode }));
      await cdp.send('Network.enable');
      return {
        /** The first complete exchange with `url`, once it is complete. */
        exchange: (url: string) => new Promise<Exchange>((done) => waiters.push({ url, done })),
      };
    }

    /** As if the user's logins had been `minutes` earlier: moved in the demo's database. */
    async function ageLogins(username: string, minutes: number): Promise<void> {
      const sql = `UPDATE sessions SET authenticated_at = authenticated_at - $2 * interval '1 minute'
                   WHERE "user" = (SELECT id::text FROM users WHERE username = $1)`;
      if (storage.env.DATABASE_URL) {
        const client = new pg.Client({ connectionString: storage.env.DATABASE_URL });
        await client.connect();
        await client.query(sql, [username, minutes]).finally(() => client.end());
        return;
      }
      // PGlite lives inside the demo's process: stop it, edit its files, start it again.
      await server.stop();
      const database = new PGlite(storage.env.DEMO_DATA_DIR!);
      try {
        const { affectedRows } = await database.query(sql, [username, minutes]);
        expect(affectedRows).toBeGreaterThan(0);
      } finally {
        await database.close();
      }
      server = await DemoServer.start(storage.env);
    }

    it('refuses the auto-submitted form and the credentialed fetch of a same-site page of another origin; the sessions stay', async () => {
      const { page, username } = await signedUpDevice();
      await logIn(await newDevice(), username);
      const before = await sessionCookie(page);
      expect(await listedSessions(page)).toBe(2);

      const form = await forge(page, 'form', '/logout-everywhere');
      const formRequest = await form.request().allHeaders();
      // Chromium sent the cookie (same site): the origin check, not SameSite, refused it.
      expect(formRequest.cookie).toContain(`${COOKIE}=${before}`);
      expect(formRequest['sec-fetch-site']).toBe('same-site');
      expect(formRequest.origin).toBe(other.url);
      expect(form.status()).toBe(403);
      await expect(page.getByRole('heading', { name: 'Request refused' }).isVisible()).resolves.toBe(true);
      await expect(page.locator('main').textContent()).resolves.toContain('CROSS_ORIGIN_REQUEST (sec-fetch-site)');

      // A CORS-failed fetch is a failed request to Playwright: read what went over the wire from Chromium's devtools protocol.
      const wire = await watchWire(page);
      const exchange = wire.exchange(`${server.url}/logout-everywhere`);
      await page.goto(`${other.url}/fetch?action=${encodeURIComponent('/logout-everywhere')}`);
      // The page itself learns nothing: no CORS headers, so its fetch fails.
      await page.waitForFunction(() => document.title !== 'other origin');
      expect(await page.title()).toBe('failed');
      const fetched = await exchange;
      expect(fetched.requestHeaders?.Cookie).toContain(`${COOKIE}=${before}`);
      expect(fetched.requestHeaders?.['Sec-Fetch-Site']).toBe('same-site');
      expect(fetched.requestHeaders?.['Sec-Fetch-Mode']).toBe('cors');
      expect(fetched.requestHeaders?.Origin).toBe(other.url);
      expect(fetched.status).toBe(403);

      // Both sessions intact, the cookie unchanged.
      expect(await sessionCookie(page)).toBe(before);
      expect(await listedSessions(page)).toBe(2);
    });

    it('refuses a forged "delete account" even right after login', async () => {
      const { page, username } = await signedUpDevice();
      const form = await forge(page, 'form', '/account/delete');
      expect(form.status()).toBe(403);
      expect(await listedSessions(page)).toBe(1);
      await expect(page.getByRole('heading', { name: `Hello, ${username}` }).isVisible()).resolves.toBe(true);
    });

    it('lets the demo\'s own page do the same: its fetch and its "Log out everywhere" button', async () => {
      const { page, username } = await signedUpDevice();
      const second = await newDevice();
      await logIn(second, username);
      await page.goto(`${server.url}/`);
      const status = await page.evaluate(() =>
        fetch('/logout-everywhere', { method: 'POST', credentials: 'include', redirect: 'manual' }).then((r) => r.type),
      );
      expect(status).toBe('opaqueredirect'); // the 303 to the login page: it went through
      await second.goto(`${server.url}/`);
      expect(second.url()).toBe(`${server.url}/login`);

      await logIn(page, username);
      await logIn(second, username);
      await page.goto(`${server.url}/`);
      await page.getByRole('button', { name: 'Log out everywhere' }).click();
      await page.waitForURL(`${server.url}/login?notice=logged-out-everywhere`);
      await second.goto(`${server.url}/`);
      expect(second.url()).toBe(`${server.url}/login`);
    });

    it('deletes the account at once after a fresh login', async () => {
      const { page, username } = await signedUpDevice();
      await page.goto(`${server.url}/`);
      await page.getByRole('button', { name: 'Delete my account' }).click();
      await page.waitForURL(`${server.url}/login?notice=account-deleted`);
      expect(await sessionCookie(page)).toBeUndefined();
      await logIn(page, username);
      expect(page.url()).toBe(`${server.url}/login`);
    });

    it('asks for the password again when the login is older than 5 minutes, then deletes', async () => {
      const { page, username } = await signedUpDevice();
      const second = await newDevice();
      await logIn(second, username);
      await ageLogins(username, 10);
      const before = (await sessionCookie(page))!;

      await page.goto(`${server.url}/`);
      await expect(page.locator('#delete-account').textContent()).resolves.toContain('asked for your password first');
      await page.getByRole('button', { name: 'Delete my account' }).click();
      await page.waitForURL(`${server.url}/reauthenticate`);
      expect(await listedSessions(page)).toBe(2); // nothing deleted

      await page.goto(`${server.url}/reauthenticate`);
      await page.getByLabel('Password').fill('wrong password');
      await page.getByRole('button', { name: 'Confirm' }).click();
      await expect(page.getByRole('alert').textContent()).resolves.toContain('not correct');
      expect(await sessionCookie(page)).toBe(before);

      await page.getByLabel('Password').fill('correct horse');
      await page.getByRole('button', { name: 'Confirm' }).click();
      await page.waitForURL(`${server.url}/?notice=reauthenticated#delete-account`);
      const after = (await sessionCookie(page))!;
      expect(after).not.toBe(before); // re-authentication rotated the id
      const replay = await page.request.get(`${server.url}/api/me`, {
        headers: { accept: 'application/json', cookie: `${COOKIE}=${before}` },
      });
      expect(replay.status()).toBe(401);
      // The other device's login is still old: its delete is refused with the code, as JSON for an API client.
      const stale = await second.request.post(`${server.url}/account/delete`, {
        headers: { accept: 'application/json' },
      });
      expect(stale.status()).toBe(403);
      expect(await stale.json()).toMatchObject({ code: 'RECENT_LOGIN_REQUIRED' });

      await page.getByRole('button', { name: 'Delete my account' }).click();
      await page.waitForURL(`${server.url}/login?notice=account-deleted`);
      await second.goto(`${server.url}/`);
      expect(second.url()).toBe(`${server.url}/login`);
    }, 90_000);
  });
});
