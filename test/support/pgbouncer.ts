import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Debian's PgBouncer in transaction pooling mode in front of a PostgreSQL server,
 * started on a free port on 127.0.0.1. Every database of the server is reachable
 * through it under its own name (a `*` fallback entry), so `postgresAt()` can
 * create a database directly on the server and hand out a URL through the pooler.
 *
 * Transaction pooling is the mode that breaks libraries: a client's consecutive
 * statements may run on different server connections, so session state (SET,
 * session advisory locks, named prepared statements, temp tables) does not carry
 * over. Running the suites through it proves the package relies on none of that (the
 * guard's prepared lookup, refused there, falls back to unnamed statements).
 */
export interface PgBouncer {
  /** `postgres://user@127.0.0.1:<port>/<db>` for the server's `serverUrl`. */
  readonly url: string;
  readonly port: number;
  /** The process id, for the logs. */
  readonly pid: number;
  /** Everything PgBouncer logged so far (for a failing test's message). */
  log(): string;
  stop(): Promise<void>;
}

/** Where the global setup leaves the running PgBouncer for the global teardown (same process). */
export const RUNNING_PGBOUNCER = Symbol.for('nestjs-typeorm-session.test.pgbouncer');

/** Where Debian puts the binary (it is not on a non-root PATH). */
const CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'];

/** The pgbouncer binary, or null when it is not installed. */
export function findPgBouncer(): string | null {
  for (const candidate of CANDIDATES) if (existsSync(candidate)) return candidate;
  try {
    return execFileSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/** `PgBouncer 1.18.0` → [1, 18]; null when the version cannot be read. */
export function pgBouncerVersion(binary: string): [number, number] | null {
  try {
    const match = /PgBouncer (\d+)\.(\d+)/.exec(execFileSync(binary, ['--version'], { encoding: 'utf8' }));
    return match ? [Number(match[1]), Number(match[2])] : null;
  } catch {
    return null;
  }
}

/** `max_prepared_statements` exists from PgBouncer 1.21 on. */
function supportsMaxPreparedStatements(binary: string): boolean {
  const version = pgBouncerVersion(binary);
  return version !== null && (version[0] > 1 || (version[0] === 1 && version[1] >= 21));
}

/** Starts PgBouncer in front of the server at `serverUrl` (trust auth, as the test server uses). */
export async function startPgBouncer(serverUrl: string, binary = findPgBouncer()): Promise<PgBouncer> {
  if (!binary) throw new Error('pgbouncer is not installed (apt-get install pgbouncer)');
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username || 'postgres');
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'nts-pgbouncer-'));
  const logFile = join(dir, 'pgbouncer.log');
  writeFileSync(join(dir, 'userlist.txt'), `"${user}" ""\n`);
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${server.hostname} port=${server.port || 5432}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      "unix_socket_dir = ''",
      'auth_type = trust',
      // The admin console (database `pgbouncer`: SHOW CONFIG, SHOW POOLS) for the PgBouncer spec.
      `admin_users = ${user}`,
      `auth_file = ${join(dir, 'userlist.txt')}`,
      'pool_mode = transaction',
      // No prepared statements across server connections, whichever version runs: 1.21+
      // could carry them (max_prepared_statements > 0), which would take the guard's
      // prepared-lookup fallback out of the test (session-store-lookup.spec.ts). Before 1.21
      // they never are carried, and the setting is an unknown parameter that stops PgBouncer.
      ...(supportsMaxPreparedStatements(binary) ? ['max_prepared_statements = 0'] : []),
      // Room for the concurrency suites' pools; few server connections, so sharing really happens.
      'max_client_conn = 500',
      'default_pool_size = 10',
      'reserve_pool_size = 2',
      // What node-postgres may send at startup that PgBouncer does not track.
      'ignore_startup_parameters = extra_float_digits,options',
      // Test databases are created and dropped all the time: forget idle pools fast.
      'autodb_idle_timeout = 10',
      'server_login_retry = 1',
      `logfile = ${logFile}`,
      `pidfile = ${join(dir, 'pgbouncer.pid')}`,
      'log_connections = 0',
      'log_disconnections = 0',
      '',
    ].join('\n'),
  );
  // PgBouncer refuses to run as root; it drops to the postgres user, which must own its files.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { uid, gid } = postgresUser();
    for (const file of ['', 'userlist.txt', 'pgbouncer.ini']) chownSync(join(dir, file), uid, gid);
  }
  const args = [...(asRoot ? ['-u', 'postgres'] : []), join(dir, 'pgbouncer.ini')];
  const child: ChildProcess = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk) => (stderr += String(chunk)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Never outlive the test run, even when a teardown is skipped.
  const killOnExit = () => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', killOnExit);

  const log = () => stderr + (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  try {
    await waitForPort(port, 10_000, () => child.exitCode !== null);
  } catch (error) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`pgbouncer did not start: ${(error as Error).message}\n${log()}`, { cause: error });
  }
  const url = new URL(serverUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    url: url.toString(),
    port,
    pid: child.pid!,
    log,
    async stop() {
      process.removeListener('exit', killOnExit);
      if (child.exitCode === null) {
        child.kill('SIGTERM'); // immediate shutdown
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `url` (a database on the server) with host and port replaced by the pooler's. */
export function throughPgBouncer(url: string, pgbouncerUrl: string): string {
  const pooled = new URL(url);
  const pooler = new URL(pgbouncerUrl);
  pooled.hostname = pooler.hostname;
  pooled.port = pooler.port;
  return pooled.toString();
}

/**
 * A TCP port on 127.0.0.1 that nothing listens on right now. (This file imports only Node
 * built-ins: the jest global setup loads it outside jest's module mapping.)
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

async function waitForPort(port: number, timeoutMs: number, gaveUp: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gaveUp()) throw new Error('the process exited');
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
