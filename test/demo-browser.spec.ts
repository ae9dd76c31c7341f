// The demo app (example/) driven by Debian's Chromium through playwright-core: every flow
// a visitor clicks through, against the demo server started as a child process.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { buildPackageIfStale } from './support/build-package.js';
import { CHROMIUM_LAUNCH_OPTIONS, DemoServer, type DemoStorage, STORAGES } from './support/demo-server.js';
import { CHROMIUM_AVAILABLE, describeEachWhere } from './support/requirements.js';

// The one browser global the page functions below touch (the project compiles without the DOM lib).
declare const document: { cookie: string };

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const SCREENSHOT = join(ROOT, 'docs', 'demo-home.png');
const COOKIE = 'session_id';

let browser: Browser;

beforeAll(async () => {
  if (!CHROMIUM_AVAILABLE) return;
  // The demo imports the built package: build it when dist/ is missing or older than src/.
  buildPackageIfStale();
  // Compile the demo with tsc (decorator metadata); it imports the package by name, through its exports map.
  execFileSync(
    process.execPath,
    [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'example/tsconfig.json')],
    {
      cwd: ROOT,
      stdio: 'pipe',
    },
  );
  browser = await chromium.launch(CHROMIUM_LAUNCH_OPTIONS);
}, 120_000);

afterAll(async () => {
  await browser?.close();
});

describeEachWhere(CHROMIUM_AVAILABLE ? STORAGES : [], 'chromium', 'the demo in Chromium on %s', (kind, openStorage) => {
  let storage: DemoStorage;
  let server: DemoServer;
  let userCount = 0;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    storage = await openStorage();
    server = await DemoServer.start(storage.env);
  }, 90_000);

  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((context) => context.close()));
  });

  afterAll(async () => {
    await server?.stop();
    await storage?.dispose();
  }, 30_000);

  /** A fresh browser profile's worth of cookies: one "device". */
  async function newDevice(): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 900, height: 760 } });
    contexts.push(context);
    return context.newPage();
  }

  function uniqueUsername(): string {
    userCount += 1;
    return `user${userCount}_${kind}`.slice(0, 20);
  }

  async function signUp(page: Page, username: string, password: string): Promise<void> {
    await page.goto(`${server.url}/signup`);
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL(`${server.url}/?notice=signed-up`);
  }

  async function logIn(page: Page, username: string, password: string): Promise<void> {
    await page.goto(`${server.url}/login`);
    await page.getByLabel('Username').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForLoadState();
  }

  async function sessionCookie(page: Page): Promise<string | undefined> {
    const cookies = await page.context().cookies(server.url);
    return cookies.find((cookie) => cookie.name === COOKIE)?.value;
  }

  /** The user's account as a new device: signed up on one page, which is returned. */
  async function signedUpDevice(
    username = uniqueUsername(),
    password = 'correct horse',
  ): Promise<{ page: Page; username: string; password: string }> {
    const page = await newDevice();
    await signUp(page, username, password);
    return { page, username, password };
  }

  it('serves the login page to a visitor without a session, and 401 to JSON clients', async () => {
    const page = await newDevice();
    const response = await page.goto(`${server.url}/`);
    expect(page.url()).toBe(`${server.url}/login`);
    expect(response?.status()).toBe(200);
    await expect(page.getByRole('heading', { name: 'Log in' }).isVisible()).resolves.toBe(true);

    const api = await page.request.get(`${server.url}/api/me`, { headers: { accept: 'application/json' } });
    expect(api.status()).toBe(401);
    expect(await api.json()).toMatchObject({ statusCode: 401 });
  });

  it('signs up with length rules and clear messages, then lands on the home page signed in', async () => {
    const page = await newDevice();
    await page.goto(`${server.url}/signup`);
    await page.getByLabel('Username').fill('abc');
    await page.getByLabel('Password').fill('short');
    await page.getByRole('button', { name: 'Create account' }).click();
    const errors = page.getByRole('alert');
    await expect(errors.textContent()).resolves.toContain('Username must be 5 to 20 characters long');
    await expect(errors.textContent()).resolves.toContain('Password must be 8 to 100 characters long');
    expect(await sessionCookie(page)).toBeUndefined();

    const username = uniqueUsername();
    await signUp(page, username, 'correct horse');
    await expect(page.getByRole('heading', { name: `Hello, ${username}` }).isVisible()).resolves.toBe(true);
    await expect(page.getByRole('status').textContent()).resolves.toContain('Welcome!');
    expect(await page.locator('tr.current').count()).toBe(1);

    // The same name in other letters is the same account.
    const other = await newDevice();
    await other.goto(`${server.url}/signup`);
    await other.getByLabel('Username').fill(username.toUpperCase());
    await other.getByLabel('Password').fill('another password');
    await other.getByRole('button', { name: 'Create account' }).click();
    await expect(other.getByRole('alert').textContent()).resolves.toContain('That username is taken');
  });

  it('logs in with the right password; a wrong password and an unknown user get one generic message', async () => {
    const { username, password } = await signedUpDevice();
    const page = await newDevice();

    await logIn(page, username, 'wrong password');
    const wrongPassword = await page.getByRole('alert').textContent();
    await logIn(page, 'nobody_here', 'wrong password');
    const unknownUser = await page.getByRole('alert').textContent();
    expect(wrongPassword).toBe('Wrong username or password.');
    expect(unknownUser).toBe(wrongPassword);
    expect(await sessionCookie(page)).toBeUndefined();

    await logIn(page, username, password);
    expect(page.url()).toBe(`${server.url}/`);
    await expect(page.getByRole('heading', { name: `Hello, ${username}` }).isVisible()).resolves.toBe(true);
  });

  it('keeps the session cookie HttpOnly: the browser holds it, page scripts cannot read it', async () => {
    const { page } = await signedUpDevice();
    const [cookie] = (await page.context().cookies(server.url)).filter((candidate) => candidate.name === COOKIE);
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
    expect(cookie.value).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const visibleToScripts = await page.evaluate(() => document.cookie);
    expect(visibleToScripts).not.toContain(COOKIE);
    expect(visibleToScripts).not.toContain(cookie.value);
    // The page itself can set and read an ordinary cookie, so the check above is not vacuous.
    await page.evaluate(() => {
      document.cookie = 'visible=yes; path=/';
    });
    await expect(page.evaluate(() => document.cookie)).resolves.toContain('visible=yes');
  });

  it('stays logged in across a reload, with the same cookie', async () => {
    const { page, username } = await signedUpDevice();
    const before = await sessionCookie(page);
    await page.reload();
    expect(page.url()).toBe(`${server.url}/?notice=signed-up`);
    await page.goto(`${server.url}/`);
    await expect(page.getByRole('heading', { name: `Hello, ${username}` }).isVisible()).resolves.toBe(true);
    expect(await sessionCookie(page)).toBe(before);
  });

  it('lists a second device; "log out everywhere" sends it to the login page at its next navigation', async () => {
    const { page: first, username, password } = await signedUpDevice();
    const second = await newDevice();
    await logIn(second, username, password);
    expect(second.url()).toBe(`${server.url}/`);

    await first.goto(`${server.url}/`);
    expect(await first.locator('tbody tr').count()).toBe(2);
    expect(await first.locator('tr.current').count()).toBe(1);

    await first.getByRole('button', { name: 'Log out everywhere' }).click();
    await first.waitForURL(`${server.url}/login?notice=logged-out-everywhere`);
    expect(await sessionCookie(first)).toBeUndefined();

    expect(await sessionCookie(second)).toBeDefined(); // the browser still holds it...
    await second.goto(`${server.url}/`);
    expect(second.url()).toBe(`${server.url}/login`); // ...but the server no longer knows it
  });

  it('"log out" deletes the session and clears the cookie', async () => {
    const { page } = await signedUpDevice();
    const cookieValue = (await sessionCookie(page))!;
    await page.locator('header').getByRole('button', { name: 'Log out', exact: true }).click();
    await page.waitForURL(`${server.url}/login?notice=logged-out`);
    await expect(page.getByRole('status').textContent()).resolves.toBe('You are logged out.');
    expect(await sessionCookie(page)).toBeUndefined();

    // Presenting the old value again does not work either: the row is gone, not just the cookie.
    const replay = await page.request.get(`${server.url}/api/me`, {
      headers: { accept: 'application/json', cookie: `${COOKIE}=${cookieValue}` },
    });
    expect(replay.status()).toBe(401);
  });

  it('changing the password rotates the cookie value: the old value stops working, the new one works', async () => {
    const { page, username, password } = await signedUpDevice();
    const other = await newDevice();
    await logIn(other, username, password);
    const before = (await sessionCookie(page))!;

    await page.goto(`${server.url}/`);
    await page.getByLabel('Current password').fill('not my password');
    await page.getByLabel('New password').fill('battery staple');
    await page.getByRole('button', { name: 'Change password' }).click();
    await expect(page.getByRole('alert').textContent()).resolves.toContain('Your current password is not correct.');
    expect(await sessionCookie(page)).toBe(before);

    await page.getByLabel('Current password').fill(password);
    await page.getByLabel('New password').fill('battery staple');
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.waitForURL(`${server.url}/?notice=password-changed-others-out`);

    const after = (await sessionCookie(page))!;
    expect(after).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(after).not.toBe(before);
    const withOld = await page.request.get(`${server.url}/api/me`, {
      headers: { accept: 'application/json', cookie: `${COOKIE}=${before}` },
    });
    expect(withOld.status()).toBe(401);
    await page.goto(`${server.url}/`);
    await expect(page.getByRole('heading', { name: `Hello, ${username}` }).isVisible()).resolves.toBe(true);

    // "Also sign out my other sessions" was checked: the other device is out.
    await other.goto(`${server.url}/`);
    expect(other.url()).toBe(`${server.url}/login`);
    // And only the new password opens the account now.
    await logIn(other, username, password);
    expect(other.url()).toBe(`${server.url}/login`);
    await logIn(other, username, 'battery staple');
    expect(other.url()).toBe(`${server.url}/`);
  });

  it('revoking another device row signs that browser out and leaves this one signed in', async () => {
    const { page: first, username, password } = await signedUpDevice();
    const second = await newDevice();
    await logIn(second, username, password);

    await first.goto(`${server.url}/`);
    const otherRow = first.locator('tbody tr:not(.current)');
    expect(await otherRow.count()).toBe(1);
    await otherRow.getByRole('button', { name: 'Revoke' }).click();
    await first.waitForURL(`${server.url}/?notice=revoked`);
    expect(await first.locator('tbody tr').count()).toBe(1);
    expect(await first.locator('tr.current').count()).toBe(1);

    await second.goto(`${server.url}/`);
    expect(second.url()).toBe(`${server.url}/login`);
  });

  it('keeps users and sessions across a server restart (migrations do not run twice)', async () => {
    const { page, username } = await signedUpDevice();
    await server.stop();
    server = await DemoServer.start(storage.env);
    // A new port, but cookies are per host, not per port: the browser still sends its cookie.
    await page.goto(`${server.url}/`);
    await expect(page.getByRole('heading', { name: `Hello, ${username}` }).isVisible()).resolves.toBe(true);
    expect(server.log).not.toMatch(/\bERROR\b/);
  }, 90_000);

  it('renders a tidy home page (screenshot for the README)', async () => {
    const { page, username, password } = await signedUpDevice('alice');
    // The other device is another browser, so the table shows two recognisable rows.
    const firefox = await browser.newContext({
      userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0',
    });
    contexts.push(firefox);
    await logIn(await firefox.newPage(), username, password);
    await page.goto(`${server.url}/?notice=signed-up`);
    expect(await page.locator('tbody tr').count()).toBe(2);
    await expect(page.locator('tbody tr:not(.current) td').first().textContent()).resolves.toMatch(
      /^Firefox 128 on Windows · 127\.0\.0\.x · active just now$/,
    );
    await expect(page.locator('tr.current .badge').textContent()).resolves.toBe('this browser');
    const png = await page.screenshot({ fullPage: true });
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.length).toBeGreaterThan(10_000);
    // Written when missing or on request, so that a test run does not dirty the working tree.
    if (kind === 'pglite' && (!existsSync(SCREENSHOT) || process.env.UPDATE_DEMO_SCREENSHOT === '1')) {
      mkdirSync(join(ROOT, 'docs'), { recursive: true });
      writeFileSync(SCREENSHOT, png);
    }
  });
});
