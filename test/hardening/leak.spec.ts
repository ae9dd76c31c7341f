import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { POSTGRES_URL } from '../support/databases.js';

/**
 * Case 2 of issue 7, cookie values never leak: the guard suites run again in a child
 * jest with test/hardening/leak-capture.setup.ts, which keeps every log line (all
 * levels, also of apps started with `logger: false`), every console line and every
 * 4xx/5xx body, and every cookie value issued or sent; each spec file fails if any
 * of that text holds a value. This spec checks the child passed and really looked.
 */
const EVERYWHERE_SUITES = [
  'test/auth-guard.spec.ts',
  'test/session-cookies.spec.ts',
  'test/session-devices.spec.ts',
  'test/hardening/fuzz.spec.ts',
];
/** Suites whose every case needs a PostgreSQL server: without one they are skipped (and say so), and log nothing. */
const POSTGRES_SUITES = ['test/cache/listener.spec.ts'];
const GUARD_SUITES = [...EVERYWHERE_SUITES, ...(POSTGRES_URL ? POSTGRES_SUITES : [])];

interface FileReport {
  file: string;
  values: number;
  logLines: number;
  errorBodies: number;
  leaks: string[];
}

it('no log line, error message or exception body of the guard suites contains a cookie value', async () => {
  const root = resolve(import.meta.dirname, '../..');
  // A renamed or moved suite must fail here, not drop out of the check unnoticed.
  expect([...EVERYWHERE_SUITES, ...POSTGRES_SUITES].filter((suite) => !existsSync(resolve(root, suite)))).toEqual([]);
  const reportPath = join(tmpdir(), `nts-leak-${randomBytes(4).toString('hex')}.jsonl`);
  try {
    await promisify(execFile)(
      process.execPath,
      [
        '--experimental-vm-modules',
        'node_modules/jest/bin/jest.js',
        '--runInBand',
        '--ci',
        ...GUARD_SUITES,
        // Last: the option takes every argument after it.
        '--setupFilesAfterEnv',
        '<rootDir>/test/hardening/leak-capture.setup.ts',
      ],
      {
        cwd: root,
        // The fuzz's 30,000 headers are the fuzz spec's job; a few hundred per run show what it logs.
        // NTS_SUITE_LOCK off: this spec holds the run's exclusive lock (test/support/suite-lock.ts).
        env: { ...process.env, NODE_OPTIONS: '', LEAK_REPORT: reportPath, FUZZ_RUNS: '300', NTS_SUITE_LOCK: 'off' },
        timeout: 560_000,
        maxBuffer: 64 * 1024 * 1024,
      },
    ).catch((error: { stdout?: string; stderr?: string }) => {
      throw new Error(`the guard suites failed under the leak capture:\n${error.stderr ?? ''}${error.stdout ?? ''}`);
    });
    const reports: FileReport[] = readFileSync(reportPath, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(reports.map((report) => report.file).sort()).toEqual([...GUARD_SUITES].sort());
    expect(reports.flatMap((report) => report.leaks)).toEqual([]);
    // It really looked: values to look for, and text to look in (log lines and error
    // bodies: every guard suite answers 401s), in every suite.
    for (const report of reports) {
      expect({
        file: report.file,
        sawValues: report.values > 0,
        sawLogs: report.logLines > 0,
        sawErrorBodies: report.errorBodies > 0,
      }).toEqual({ file: report.file, sawValues: true, sawLogs: true, sawErrorBodies: true });
    }
    const total = (key: 'values' | 'logLines' | 'errorBodies') => reports.reduce((sum, report) => sum + report[key], 0);
    process.stderr.write(
      `[hardening:leak] ${reports.length} guard suites: ${total('values')} cookie values checked against ` +
        `${total('logLines')} log lines and ${total('errorBodies')} error bodies, 0 leaks\n`,
    );
  } finally {
    rmSync(reportPath, { force: true });
  }
}, 600_000);
