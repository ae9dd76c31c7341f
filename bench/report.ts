import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';

/** The machine and software a run happened on, for the report and the JSON. */
export interface Environment {
  date: string;
  cpu: string;
  cores: number;
  memoryGb: number;
  os: string;
  node: string;
  postgres: string;
  packages: Record<string, string>;
  /** 1-minute load average when the run started: other work on the machine skews numbers. */
  loadAverage: number;
}

const MEASURED_PACKAGES = [
  '@nestjs/core',
  '@nestjs/platform-express',
  'typeorm',
  'pg',
  'autocannon',
  'express-session',
  'connect-pg-simple',
];

export async function describeEnvironment(postgresVersion: string): Promise<Environment> {
  const require = createRequire(import.meta.url);
  const packages: Record<string, string> = {};
  for (const name of MEASURED_PACKAGES) {
    packages[name] = (await installedVersion(require.resolve(name), name)) ?? 'unknown';
  }
  return {
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.cpus().length,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    postgres: postgresVersion,
    packages,
    loadAverage: Math.round(os.loadavg()[0] * 100) / 100,
  };
}

/** The version in the package.json of `name` above its resolved entry (some export maps hide ./package.json). */
async function installedVersion(entry: string, name: string): Promise<string | null> {
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const manifest = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (manifest.name === name) return manifest.version ?? null;
    } catch {
      // no package.json here: keep climbing
    }
  }
  return null;
}

export function environmentLine(env: Environment): string {
  return `${env.cpu}, ${env.cores} cores, ${env.memoryGb} GB; ${env.os}; Node ${env.node}; PostgreSQL ${env.postgres}; Nest ${env.packages['@nestjs/core']}, TypeORM ${env.packages.typeorm}, pg ${env.packages.pg}, autocannon ${env.packages.autocannon}; load average ${env.loadAverage}`;
}

/** A plain-text table whose first column is left-aligned and the others right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column])))
      .join('  ');
  return [line(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(line)].join('\n');
}

/** A check of a result against its target, for the report and the JSON. */
export interface TargetCheck {
  name: string;
  value: number | null;
  target: string;
  met: boolean | null;
}

/**
 * The checks, one line each. A smoke run (`judged` false) prints them unmarked: at toy sizes
 * and one-second loads the figures say nothing about the targets, only that numbers come out.
 */
export function targetLines(checks: TargetCheck[], judged: boolean): string {
  return checks
    .map((check) => {
      const mark = !judged ? 'not judged at smoke size' : check.met === null ? '?' : check.met ? 'met' : 'MISSED';
      const value = check.value === null ? 'n/a' : formatNumber(check.value, Math.abs(check.value) >= 1000 ? 0 : 2);
      return `  ${check.name}: ${value}  (target ${check.target})  ${mark}`;
    })
    .join('\n');
}

export function formatNumber(value: number | null, digits = 0): string {
  if (value === null || !Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export async function writeJson(file: string, data: unknown): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(data, null, 2)}\n`);
}
