import { execFile } from 'node:child_process';
import { appendFileSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from '../support/pgbouncer.js';
import { postgresBinDir, REQUIREMENTS } from '../support/requirements.js';

const run = promisify(execFile);

/**
 * A PostgreSQL cluster of its own, in a temporary directory on a free port, that a
 * test may stop and start at will: the outage test must never stop the server
 * every other suite (and engineer) is using. Trust auth, user `postgres`.
 */
export interface ThrowawayPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`. */
  readonly url: string;
  readonly port: number;
  /** Its data directory (`postmaster.pid` there names the server's process: `bench:replicas` reads its CPU). */
  readonly dataDir: string;
  /** Stops the server; `immediate` is a crash (no shutdown checkpoint, WAL replay on start). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again and resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it for good and deletes its files. */
  destroy(): Promise<void>;
}

/** A streaming standby of a throwaway primary (`pg_basebackup -R`), hot: it answers read-only queries. */
export interface ThrowawayStandby extends ThrowawayPostgres {
  /**
   * Sets `recovery_min_apply_delay` (ALTER SYSTEM + `pg_reload_conf()`, as an operator would):
   * commits become visible on the standby that long after the primary made them.
   */
  setApplyDelay(ms: number): Promise<void>;
}

/** The directory of initdb/pg_ctl; specs gate on `postgresBinDir() !== null` (requirement `postgresBinaries`). */
function postgresBinaries(): string {
  const bin = postgresBinDir();
  if (bin === null) throw new Error(`PostgreSQL server binaries not found: ${REQUIREMENTS.postgresBinaries}`);
  return bin;
}

/** A temporary directory the server binaries may use, and a runner for them (as the postgres user when root). */
async function workspace(prefix: string) {
  const bin = postgresBinaries();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  // initdb and postgres refuse to run as root: run them as the postgres user then.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const [uid, gid] = await Promise.all(
      ['-u', '-g'].map(async (flag) => Number((await run('id', [flag, 'postgres'])).stdout.trim())),
    );
    chownSync(dir, uid, gid);
  }
  const tool = (name: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', join(bin, name), ...args]) : run(join(bin, name), args);
  return { dir, data: join(dir, 'data'), tool };
}

/** Start, stop and destroy for the cluster in `data`, listening on `port`. */
function controls(
  space: Awaited<ReturnType<typeof workspace>>,
  port: number,
  extraOptions: string[] = [],
  durable = false,
): ThrowawayPostgres {
  const { dir, data, tool } = space;
  const options = [
    `-p ${port}`,
    "-c listen_addresses='127.0.0.1'",
    `-c unix_socket_directories='${dir}'`,
    `-c fsync=${durable ? 'on' : 'off'}`,
    '-c max_connections=50',
    ...extraOptions,
  ].join(' ');
  const start = async () => {
    await tool('pg_ctl', ['start', '-w', '-t', '30', '-D', data, '-l', join(dir, 'server.log'), '-o', options]);
  };
  const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
    await tool('pg_ctl', ['stop', '-w', '-t', '30', '-m', mode, '-D', data]);
  };
  let destroyed = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dataDir: data,
    start,
    stop,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await stop('immediate').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `durable`: fsync on (`bench:scaling` times commits); tests run without, as every throwaway did so far. */
export async function startThrowawayPostgres({
  durable = false,
}: { durable?: boolean } = {}): Promise<ThrowawayPostgres> {
  const space = await workspace('nts-throwaway-pg-');
  const port = await freePort();
  await space.tool('initdb', ['-D', space.data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  // wal_level replica and WAL senders (PostgreSQL 10+'s defaults, said anyway): a standby may stream from it.
  const server = controls(space, port, ['-c wal_level=replica', '-c max_wal_senders=5'], durable);
  await server.start();
  return server;
}

/**
 * A hot standby of `primary`: `pg_basebackup -R` (which writes `primary_conninfo` and
 * `standby.signal`), streaming, with `recovery_min_apply_delay` set to `applyDelayMs` in its
 * `postgresql.auto.conf` (not on the command line, which ALTER SYSTEM could not override).
 */
export async function startThrowawayStandby(
  primary: ThrowawayPostgres,
  { applyDelayMs = 0 }: { applyDelayMs?: number } = {},
): Promise<ThrowawayStandby> {
  const space = await workspace('nts-throwaway-standby-');
  const port = await freePort();
  await space.tool('pg_basebackup', [
    '-h',
    '127.0.0.1',
    '-p',
    String(primary.port),
    '-U',
    'postgres',
    '-D',
    space.data,
    '-R',
    '-X',
    'stream',
    '--no-sync',
  ]);
  appendFileSync(
    join(space.data, 'postgresql.auto.conf'),
    `recovery_min_apply_delay = '${applyDelayMs}ms'\nhot_standby = on\nwal_receiver_status_interval = 1s\n`,
  );
  const server = controls(space, port);
  await server.start();
  return {
    ...server,
    async setApplyDelay(ms: number) {
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      try {
        await client.query(`ALTER SYSTEM SET recovery_min_apply_delay = '${Math.trunc(ms)}ms'`);
        await client.query('SELECT pg_reload_conf()');
      } finally {
        await client.end();
      }
    },
  };
}
