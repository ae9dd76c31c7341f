// The demo server (example/) as a child process, where it keeps its data, and how the
// browser specs launch Chromium: shared by the demo's browser specs.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LaunchOptions } from 'playwright-core';
import { buildPackageIfStale } from './build-package.js';
import { POSTGRES_URL, postgresAt } from './databases.js';
import { CHROMIUM_PATH } from './requirements.js';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');

// playwright-core gives every launch a fresh temporary --user-data-dir of its own (and refuses one in args).
export const CHROMIUM_LAUNCH_OPTIONS: LaunchOptions = {
  executablePath: CHROMIUM_PATH,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-dev-shm-usage',
  ],
};

/** Where the demo keeps its data: a fresh PGlite directory, or a fresh PostgreSQL database. */
export interface DemoStorage {
  env: Record<string, string | undefined>;
  dispose(): Promise<void>;
}

export const STORAGES: [string, () => Promise<DemoStorage>][] = [
  [
    'pglite',
    async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'demo-pglite-'));
      return {
        env: { DEMO_DATA_DIR: dataDir, DATABASE_URL: undefined },
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
              dispose: () => database.dispose(),
            };
          },
        ] as [string, () => Promise<DemoStorage>],
      ]
    : []),
];

/** The demo server as a child process, as `npm start` runs it (minus the build). */
export class DemoServer {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
    private readonly output: string[],
  ) {}

  static start(env: Record<string, string | undefined>): Promise<DemoServer> {
    const childEnv: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      NO_COLOR: '1',
      NODE_ENV: 'test',
    };
    for (const [name, value] of Object.entries(env)) {
      if (value === undefined) delete childEnv[name];
      else childEnv[name] = value;
    }
    const child = spawn(process.execPath, [join(ROOT, 'example/dist/main.js')], {
      cwd: ROOT,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`demo did not start within 60 s:\n${output.join('')}`));
      }, 60_000);
      const onData = (chunk: Buffer) => {
        output.push(chunk.toString());
        const ready = /Demo ready: open (http:\/\/\S+)/.exec(output.join(''));
        if (ready) {
          clearTimeout(timer);
          resolvePromise(new DemoServer(child, ready[1], output));
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`demo exited with ${code} before it was ready:\n${output.join('')}`));
      });
    });
  }

  /** SIGTERM, as Ctrl-C would: the demo closes its database and exits by itself. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((done) => this.child.once('exit', () => done()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }

  get log(): string {
    return this.output.join('');
  }
}

/**
 * Compiles the demo with tsc (decorator metadata); it imports the package by name, through
 * its exports map, so the package is built first when dist/ is missing or stale.
 */
export function compileDemo(): void {
  buildPackageIfStale();
  execFileSync(
    process.execPath,
    [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'example/tsconfig.json')],
    { cwd: ROOT, stdio: 'pipe' },
  );
}
