import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { POSTGRES_DIRECT, type OpenDatabase } from './support/databases.js';
import { describeEachWhere } from './support/requirements.js';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');

const TITLE = 'the packed package, installed into a separate Nest app (%s)';

/**
 * The package as users get it: `npm pack`, installed into a separate app by npm,
 * imported by name, the seed's SessionService methods run against PostgreSQL (every method,
 * on both ends of the peer range, Express and Fastify: `npm run test:consumers`, in .ci/run).
 */
describeEachWhere(POSTGRES_DIRECT, 'postgres', TITLE, (_label, database) => {
  let db: OpenDatabase;
  let appDir: string;

  beforeAll(async () => {
    db = await database.open();
    appDir = await mkdtemp(join(tmpdir(), 'nts-consumer-'));
  });
  afterAll(async () => {
    await db.dispose();
    await rm(appDir, { recursive: true, force: true });
  });

  it("installs from the tarball and runs the seed's seven SessionService methods", async () => {
    const { stdout: packed } = await run('npm', ['pack', '--json', '--pack-destination', appDir], { cwd: root });
    const [{ filename, files }] = JSON.parse(packed) as { filename: string; files: { path: string }[] }[];
    const paths = files.map((file) => file.path);
    expect(paths).toContain('dist/index.js');
    expect(paths).toContain('dist/index.d.ts');
    expect(paths.filter((path) => !/^(dist\/|package\.json$|README\.md$|LICENSE$)/.test(path))).toEqual([]);

    const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8'));
    const versionOf = (name: string) => manifest.devDependencies[name];
    const peers = [
      '@nestjs/common',
      '@nestjs/core',
      '@nestjs/typeorm',
      '@nestjs/schedule',
      'typeorm',
      'reflect-metadata',
      'rxjs',
      'pg',
    ];
    await writeFile(
      join(appDir, 'package.json'),
      JSON.stringify({
        name: 'consumer-app',
        private: true,
        type: 'module',
        dependencies: {
          'nestjs-typeorm-session': `file:./${filename}`,
          ...Object.fromEntries(peers.map((name) => [name, versionOf(name)])),
        },
      }),
    );
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: appDir,
      timeout: 240_000,
    });
    await copyFile(join(root, 'test/fixtures/consumer-app.mjs'), join(appDir, 'app.mjs'));

    const { stdout } = await run(process.execPath, ['app.mjs'], {
      cwd: appDir,
      env: { ...process.env, NODE_OPTIONS: '', DATABASE_URL: db.url! },
    });
    expect(JSON.parse(stdout)).toEqual({
      cookieLength: 43,
      get: 'alice',
      getIsExpired: false,
      getByUserId: 'alice',
      getUserIdFromSessionId: 'alice',
      manual: 'alice',
      invalidError: true,
      afterDelete: null,
      deletedByUser: 1,
    });
  }, 300_000);
});
