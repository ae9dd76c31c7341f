// The demo's session table in Chromium: two browsers with different user agents show two
// rows a person recognises, and "active …" moves once per activityInterval.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { POSTGRES_URL, postgresAt } from './support/databases.js';
import { CHROMIUM_LAUNCH_OPTIONS, compileDemo, DemoServer } from './support/demo-server.js';
import { CHROMIUM_AVAILABLE, describeEachWhere } from './support/requirements.js';

const CHROME_LINUX =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36';
const FIREFOX_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0';

/** Where the demo keeps its data, and how the test runs SQL on it (the demo's clock is the database's): test/support/demo-server.ts's storages plus `query`. */
interface DemoStorage {
  env: Record<string, string | undefined>;
  /** Runs `sql` on the demo's database; PGlite's directory has one owner, so the demo is stopped around it. */
  query(sql: string, server: DemoServer): Promise<DemoServer>;
  dispose(): Promise<void>;
}

const STORAGES: [string, () => Promise<DemoStorage>][] = [
  [
    'pglite',
    async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'demo-devices-'));
      const env = { DEMO_DATA_DIR: dataDir, DATABASE_URL: undefined };
      return {
        env,
        async query(sql, server) {
          await server.stop();
          const db = await PGlite.create(dataDir);
          try {
            await db.exec(sql);
          } finally {
            await db.close();
          }
          return DemoServer.start(env);
        },
        dispose: async () => rmSync(dataDir, { recursive: true, force: true }),
      };
    },
  ],
  ...(POSTGRES_URL
    ? [
        [
          'postgres',
          async () => {
            const database = await postgresAt(POSTGRES_URL!).open();
            return {
              env: { DATABASE_URL: database.url!, DEMO_DATA_DIR: undefined },
              async query(sql: string, server: DemoServer) {
                const client = new pg.Client({ connectionString: database.url! });
                await client.connect();
                try {
                  await client.query(sql);
                } finally {
                  await client.end();
                }
                return server;
              },
              dispose: () => database.dispose(),
            };
          },
        ] as [string, () => Promise<DemoStorage>],
      ]
    : []),
];

describeEachWhere(
  CHROMIUM_AVAILABLE ? STORAGES : [],
  'chromium',
  'the demo device table in Chromium on %s',
  (_kind, openStorage) => {
    let browser: Browser;
    let storage: DemoStorage;
    let server: DemoServer;
    const contexts: BrowserContext[] = [];

    beforeAll(async () => {
      compileDemo();
      browser = await chromium.launch(CHROMIUM_LAUNCH_OPTIONS);
      storage = await openStorage();
      server = await DemoServer.start(storage.env);
    }, 120_000);

    afterAll(async () => {
      await Promise.all(contexts.map((context) => context.close()));
      await browser?.close();
      await server?.stop();
      await storage?.dispose();
    }, 30_000);

    async function device(userAgent: string): Promise<Page> {
      const context = await browser.newContext({ userAgent, viewport: { width: 1000, height: 760 } });
      contexts.push(context);
      return context.newPage();
    }

    /** The text of every row of the session table, whitespace collapsed. */
    async function rows(page: Page): Promise<string[]> {
      await page.goto(`${server.url}/`);
      const cells = await page.locator('tbody tr td:first-child').allTextContents();
      return cells.map((text) => text.replace(/\s+/g, ' ').trim());
    }

    it('two browsers show two recognisable rows; "active" moves once per activityInterval', async () => {
      const chrome = await device(CHROME_LINUX);
      const firefox = await device(FIREFOX_WINDOWS);
      await chrome.goto(`${server.url}/signup`);
      await chrome.getByLabel('Username').fill('devices');
      await chrome.getByLabel('Password').fill('correct horse');
      await chrome.getByRole('button', { name: 'Create account' }).click();
      await chrome.waitForURL(`${server.url}/?notice=signed-up`);
      await firefox.goto(`${server.url}/login`);
      await firefox.getByLabel('Username').fill('devices');
      await firefox.getByLabel('Password').fill('correct horse');
      await firefox.getByRole('button', { name: 'Log in' }).click();
      await firefox.waitForURL(`${server.url}/`);

      expect((await rows(chrome)).sort()).toEqual([
        'Chrome 156 on Linux · 127.0.0.x · active just now · this browser',
        'Firefox 128 on Windows · 127.0.0.x · active just now',
      ]);
      expect(await rows(firefox)).toContain('Firefox 128 on Windows · 127.0.0.x · active just now · this browser');

      // 3 minutes ago: within the 5-minute activityInterval, so Firefox's next request writes nothing...
      server = await storage.query(`UPDATE sessions SET last_seen = now() - interval '3 minutes'`, server);
      await rows(firefox);
      expect(await rows(chrome)).toContain('Firefox 128 on Windows · 127.0.0.x · active 3 minutes ago');
      // ...10 minutes ago: past it, so Firefox's next request moves it (Chrome's own did just now).
      server = await storage.query(`UPDATE sessions SET last_seen = now() - interval '10 minutes'`, server);
      expect(await rows(chrome)).toContain('Firefox 128 on Windows · 127.0.0.x · active 10 minutes ago');
      await rows(firefox);
      expect((await rows(chrome)).sort()).toEqual([
        'Chrome 156 on Linux · 127.0.0.x · active just now · this browser',
        'Firefox 128 on Windows · 127.0.0.x · active just now',
      ]);

      // The demo runs with deviceBinding. Chromium here never registers (no DBSC key on Linux
      // headless: docs/device-binding.md), so the binding is written as a DBSC browser's
      // registration leaves it: the list marks that session, and its cookie alone no longer opens it.
      server = await storage.query(
        `UPDATE sessions SET device_key = '{"kty":"EC","crv":"P-256","x":"x","y":"y"}', device_session_id = 's'
         WHERE user_agent LIKE '%Firefox%'`,
        server,
      );
      expect((await rows(chrome)).sort()).toEqual([
        'Chrome 156 on Linux · 127.0.0.x · active just now · this browser',
        "Firefox 128 on Windows · 127.0.0.x · active just now · bound to this device's security chip",
      ]);
      await firefox.goto(`${server.url}/`);
      expect(new URL(firefox.url()).pathname).toBe('/login');
    }, 240_000);
  },
);
