import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FromApp, ToApp } from './apps/serve.js';

/** The contenders, in the issues' numbering (5: issue 12's cached guard). */
export interface BenchApp {
  /** 1 to 5, as in the table. */
  number: number;
  /** Table label. */
  label: string;
  /** Compiled entry under ./apps. */
  entry: string;
  /** Whether it must answer 401 without a valid cookie (app 1 has no guard). */
  guarded: boolean;
  /** Which of the seeded cookies it reads. */
  cookies: 'package' | 'express';
}

export const APPS: BenchApp[] = [
  { number: 1, label: 'no guard (ceiling)', entry: 'no-guard.app.js', guarded: false, cookies: 'package' },
  { number: 2, label: 'raw pg PK SELECT guard (floor)', entry: 'pg-guard.app.js', guarded: true, cookies: 'package' },
  {
    number: 3,
    label: 'nestjs-typeorm-session AuthGuard',
    entry: 'package-guard.app.js',
    guarded: true,
    cookies: 'package',
  },
  {
    number: 4,
    label: 'express-session + connect-pg-simple',
    entry: 'express-session.app.js',
    guarded: true,
    cookies: 'express',
  },
  {
    number: 5,
    label: 'nestjs-typeorm-session AuthGuard, cache: true',
    entry: 'cached-guard.app.js',
    guarded: true,
    cookies: 'package',
  },
  {
    // Not in the default run: what Nest's guard machinery costs by itself (a guard that
    // returns true), to tell the framework's share of app 5's cost from the package's.
    number: 6,
    label: 'empty guard (returns true)',
    entry: 'empty-guard.app.js',
    guarded: false,
    cookies: 'package',
  },
];

/** The apps `npm run bench` runs without `--apps`. */
export const DEFAULT_APPS = APPS.filter((app) => app.number <= 5);

/** A running app process: its port, and calls into it over IPC. */
export class AppProcess {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();

  private constructor(
    readonly app: BenchApp,
    readonly port: number,
    private readonly child: ChildProcess,
  ) {
    child.on('message', (message: FromApp) => {
      if (message.type !== 'reply') return;
      const call = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (message.error !== undefined) call?.reject(new Error(message.error));
      else call?.resolve(message.value);
    });
    child.on('exit', () => {
      for (const call of this.pending.values()) call.reject(new Error(`app ${app.number} exited`));
      this.pending.clear();
    });
  }

  /** Forks the app with DATABASE_URL set and waits until it listens (or fails). */
  static async start(
    app: BenchApp,
    databaseUrl: string,
    options: { nodeFlags?: string[]; env?: Record<string, string> } = {},
  ): Promise<AppProcess> {
    const child = fork(fileURLToPath(new URL(`./apps/${app.entry}`, import.meta.url)), [], {
      env: { ...process.env, ...options.env, DATABASE_URL: databaseUrl, NODE_ENV: 'production' },
      execArgv: options.nodeFlags ?? [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`app ${app.number} did not start within 60 s`)), 60_000);
      child.on('message', (message: FromApp) => {
        if (message.type === 'ready') {
          clearTimeout(timer);
          resolve(message.port);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`app ${app.number} (${app.label}) exited with code ${code} before listening`));
      });
    });
    return new AppProcess(app, port, child);
  }

  /** Runs one of the app's IPC tasks (`memory`, `cpu`, `purge`) and returns its value. */
  call<T>(task: string): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send({ type: 'call', id, task } satisfies ToApp);
    });
  }

  /** CPU time (user + system) the process has used so far, in microseconds. */
  async cpuMicros(): Promise<number> {
    const usage = await this.call<NodeJS.CpuUsage>('cpu');
    return usage.user + usage.system;
  }

  /** Asks the app to close, and kills it if it has not exited after 10 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.send({ type: 'stop' } satisfies ToApp);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
}
