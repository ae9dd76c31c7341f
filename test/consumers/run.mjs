// The consumer check (`npm run test:consumers`, run by .ci/run): both ends of the peer
// range, as users install them. The packed tarball goes into two throwaway apps
// (templates beside this file, sources in ./app):
//   commonjs-nest11  a CommonJS app as `nest new` makes it, newest NestJS 11 / @nestjs/typeorm 11 /
//                    @nestjs/schedule 6 / TypeORM 0.3: it require()s the ESM package (Node >= 20.19)
//   esm-nest12       an ESM app on NestJS 12 / @nestjs/typeorm 12 / @nestjs/schedule 12 / TypeORM 1
// Each app is compiled by its own TypeScript, migrates a fresh database with its own TypeORM
// CLI (run, revert each, run), then boots on Express and on Fastify: log in → guarded 200 → log
// out → 401, every public SessionService method, the purge job.
//
// The apps' node_modules are cached outside the clone, keyed by the template's package.json
// (and this package's peer ranges): a warm run only swaps the package itself for the new
// tarball. To move an end of the range, pin the newest of that line in the template
// (`npm view @nestjs/core@^11 version`).
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';

const HERE = import.meta.dirname;
const ROOT = resolve(HERE, '../..');
const PACKAGE = 'nestjs-typeorm-session';
const PLATFORMS = ['express', 'fastify'];
/** How each app must load the package: the CommonJS one through `require` (require(esm)). */
const CONSUMERS = [
  { name: 'commonjs-nest11', loads: /\brequire\(["']nestjs-typeorm-session["']\)/ },
  { name: 'esm-nest12', loads: /\bfrom ["']nestjs-typeorm-session["']/ },
];
/** The installed versions worth printing. */
const SHOWN = [
  '@nestjs/common',
  '@nestjs/core',
  '@nestjs/platform-express',
  '@nestjs/platform-fastify',
  '@nestjs/typeorm',
  '@nestjs/schedule',
  'typeorm',
  'pg',
  'cron',
  'rxjs',
  'reflect-metadata',
  'typescript',
];
const CACHE = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), PACKAGE, 'consumers');

const execFileAsync = promisify(execFile);

/** Runs a command, resolving to its stdout; rejects with its whole output. */
async function run(command, args, options = {}) {
  try {
    const { stdout } = await execFileAsync(command, args, { maxBuffer: 64 * 1024 * 1024, ...options });
    return stdout;
  } catch (error) {
    throw new Error(`${command} ${args.join(' ')} failed:\n${error.stdout ?? ''}${error.stderr ?? error.message}`, {
      cause: error,
    });
  }
}

/** Runs a command with its output shown; resolves to whether it exited 0. */
function runShown(command, args, options) {
  return new Promise((done) => {
    const child = spawn(command, args, { stdio: 'inherit', ...options });
    child.on('error', () => done(false));
    child.on('exit', (code) => done(code === 0));
  });
}

const seconds = (since) => `${((performance.now() - since) / 1000).toFixed(1)} s`;

async function withClient(url, work) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A fresh database on DATABASE_URL's server, and a function that drops it. */
async function createDatabase(serverUrl) {
  const name = `nts_consumer_${randomBytes(6).toString('hex')}`;
  await withClient(serverUrl, (client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const drop = () => withClient(serverUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  return { url: url.toString(), drop };
}

/** What the app's node_modules depend on: its template, this package's peers, Node's major. */
async function cacheKey(templateManifest) {
  const own = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
  const hash = createHash('sha256')
    .update(templateManifest)
    .update(JSON.stringify([own.peerDependencies, own.dependencies ?? {}, process.versions.node.split('.')[0]]))
    .digest('hex');
  return hash.slice(0, 16);
}

/**
 * The app's node_modules, from the cache or, cold, from `npm install` of the template with
 * the tarball (so npm also checks that the pinned versions satisfy the peer ranges).
 */
async function installedModules(name, tarball) {
  const templateManifest = await readFile(join(HERE, name, 'package.json'), 'utf8');
  const cached = join(CACHE, `${name}-${await cacheKey(templateManifest)}`);
  if (existsSync(join(cached, 'node_modules'))) return { modules: join(cached, 'node_modules'), cold: false };
  const staging = `${cached}.${process.pid}`;
  await mkdir(staging, { recursive: true });
  try {
    const manifest = JSON.parse(templateManifest);
    manifest.dependencies[PACKAGE] = `file:${tarball}`;
    await writeFile(join(staging, 'package.json'), JSON.stringify(manifest, null, 2));
    await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: staging, timeout: 600_000 });
    await rename(staging, cached).catch((error) => {
      if (!existsSync(join(cached, 'node_modules'))) throw error; // else a concurrent run got there first
    });
  } finally {
    await rm(staging, { recursive: true, force: true }); // left by a failed install, or when another run won
  }
  // Installs for earlier versions of the template are dead weight (about 100 MB each).
  for (const entry of await readdir(CACHE)) {
    if (new RegExp(`^${name}-[0-9a-f]{16}$`).test(entry) && join(CACHE, entry) !== cached) {
      await rm(join(CACHE, entry), { recursive: true, force: true });
    }
  }
  return { modules: join(cached, 'node_modules'), cold: true };
}

/** Puts this run's tarball in place of the package in the app's node_modules. */
async function replacePackage(modules, tarball) {
  const target = join(modules, PACKAGE);
  await rm(target, { recursive: true, force: true });
  await mkdir(target);
  await run('tar', ['-xzf', tarball, '-C', target, '--strip-components=1']);
}

async function versions(modules) {
  const entries = await Promise.all(
    SHOWN.map(async (dependency) => {
      const manifest = JSON.parse(await readFile(join(modules, dependency, 'package.json'), 'utf8'));
      return `${dependency} ${manifest.version}`;
    }),
  );
  return entries.join(', ');
}

async function migrationState(url) {
  return withClient(url, async (client) => {
    const { rows: tables } = await client.query(`SELECT to_regclass('public.sessions') IS NOT NULL AS present`);
    const { rows: applied } = await client.query('SELECT name FROM migrations ORDER BY id');
    return { table: tables[0].present, applied: applied.map((row) => row.name) };
  });
}

/** The app's own TypeORM CLI: run, revert each migration (the triggers, then the column, then the table go), run again; checked in the database. */
async function migrate(appDir, url) {
  const typeorm = (command) =>
    run(join(appDir, 'node_modules/.bin/typeorm'), [command, '-d', 'dist/data-source.js'], {
      cwd: appDir,
      env: { ...process.env, DATABASE_URL: url },
    });
  const expect = async (step, expected) => {
    const state = await migrationState(url);
    if (JSON.stringify(state) !== JSON.stringify(expected)) {
      throw new Error(`after ${step}: expected ${JSON.stringify(expected)}, found ${JSON.stringify(state)}`);
    }
  };
  const migrations = await migrationNames();
  await typeorm('migration:run');
  await expect('migration:run', { table: true, applied: migrations });
  // Reverted one by one, newest first: the table stays until its own migration is reverted.
  for (let left = migrations.length - 1; left >= 0; left--) {
    await typeorm('migration:revert');
    await expect(`migration:revert down to ${left}`, { table: left > 0, applied: migrations.slice(0, left) });
  }
  await typeorm('migration:run');
  await expect('the second migration:run', { table: true, applied: migrations });
}

/** The package's migrations in order, as the build that `npm pack` packed lists them in `sessionMigrations`. */
async function migrationNames() {
  const { sessionMigrations } = await import(pathToFileURL(join(ROOT, 'dist/index.js')).href);
  return sessionMigrations.map((Migration) => new Migration().name);
}

/** Installs, compiles, migrates and checks one app; resolves to its failures. */
async function checkConsumer({ name, loads }, work, tarball, serverUrl) {
  console.log(`\n${name}`);
  const appDir = join(work, name);
  const started = performance.now();
  const { modules, cold } = await installedModules(name, tarball);
  await replacePackage(modules, tarball);
  await mkdir(appDir);
  await cp(join(HERE, name, 'package.json'), join(appDir, 'package.json'));
  await cp(join(HERE, name, 'tsconfig.json'), join(appDir, 'tsconfig.json'));
  await cp(join(HERE, 'app'), join(appDir, 'src'), { recursive: true });
  await symlink(modules, join(appDir, 'node_modules'), 'dir');
  console.log(`  node ${process.versions.node}, ${await versions(modules)}`);
  console.log(`  install (${cold ? 'cold: npm install' : 'warm: cache + tarball'}): ${seconds(started)}`);

  let step = performance.now();
  await run(join(appDir, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: appDir });
  const compiled = await readFile(join(appDir, 'dist/data-source.js'), 'utf8');
  if (!loads.test(compiled)) throw new Error(`dist/data-source.js does not load ${PACKAGE} as expected (${loads})`);
  console.log(`  tsc: ${seconds(step)}`);

  const database = await createDatabase(serverUrl);
  const failures = [];
  try {
    step = performance.now();
    await migrate(appDir, database.url);
    console.log(`  typeorm migration:run, migration:revert, migration:run: ${seconds(step)}`);
    for (const platform of PLATFORMS) {
      step = performance.now();
      console.log(`  ${platform}:`);
      const passed = await runShown(process.execPath, ['dist/check.js', platform], {
        cwd: appDir,
        env: { ...process.env, NODE_OPTIONS: '', DATABASE_URL: database.url },
      });
      console.log(`  ${passed ? 'PASS' : 'FAIL'} ${name} on ${platform} (${seconds(step)})`);
      if (!passed) failures.push(`${name} on ${platform}`);
    }
  } finally {
    await database.drop();
  }
  console.log(`  ${name}: ${seconds(started)} in all`);
  return failures;
}

async function main() {
  const serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    console.error(
      'consumer check: DATABASE_URL is not set. It creates (and drops) a database on that PostgreSQL server:\n' +
        '  DATABASE_URL=postgres://postgres@127.0.0.1:5432/test npm run test:consumers',
    );
    return 1;
  }
  const started = performance.now();
  const work = await mkdtemp(join(tmpdir(), 'nts-consumers-'));
  const failures = [];
  try {
    await run('npm', ['pack', '--pack-destination', work, '--loglevel=error'], { cwd: ROOT });
    const [tarball] = (await readdir(work)).filter((file) => file.endsWith('.tgz'));
    console.log(`packed ${tarball} (${seconds(started)})`);
    for (const consumer of CONSUMERS) {
      try {
        failures.push(...(await checkConsumer(consumer, work, join(work, tarball), serverUrl)));
      } catch (error) {
        console.error(`  ${error.message}`);
        console.log(`  FAIL ${consumer.name}`);
        failures.push(consumer.name);
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  console.log(
    failures.length === 0
      ? `\nconsumer check passed (${seconds(started)})`
      : `\nconsumer check FAILED: ${failures.join('; ')} (${seconds(started)})`,
  );
  return failures.length === 0 ? 0 : 1;
}

process.exitCode = await main();
