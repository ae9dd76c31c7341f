import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import http from 'node:http';
import { relative } from 'node:path';
import { format } from 'node:util';
import { afterAll, expect } from '@jest/globals';
import { ConsoleLogger, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { SessionService } from '../../src/session.service.js';

/**
 * Jest `setupFilesAfterEnv` for the leak check (test/hardening/leak.spec.ts runs the
 * guard suites in a child jest with it). It records every cookie value the package
 * issues, every value clients send, and everything that could carry one out: every
 * Nest log line at every level (apps started with `logger: false` log into a silent
 * sink instead; a logger a test passes still gets every line), every console line, and
 * the body of every 4xx/5xx response. After each spec file it fails the file when any
 * of that text contains a cookie value (or, in logs, its stored digest), and appends
 * its counts to $LEAK_REPORT.
 */

/** Shorter values are too generic to search for ("a", "x", "1"): junk, never a token. */
const MIN_VALUE_LENGTH = 16;

const values = new Set<string>();
const logText: string[] = [];
const errorBodies: string[] = [];

const keepValue = (value: unknown) => {
  if (typeof value === 'string' && value.length >= MIN_VALUE_LENGTH) values.add(value);
};
const keepLog = (...parts: unknown[]) => {
  logText.push(parts.map((part) => (typeof part === 'string' ? part : format('%O', part))).join(' '));
};

/** Every `name=value` value of a Cookie header (or the value of a Set-Cookie line). */
function cookieValues(header: unknown): string[] {
  const lines = Array.isArray(header) ? header.map(String) : typeof header === 'string' ? [header] : [];
  return lines.flatMap((line) =>
    line.split(';').flatMap((pair) => {
      const equals = pair.indexOf('=');
      return equals === -1
        ? []
        : [
            pair
              .slice(equals + 1)
              .trim()
              .replace(/^"(.*)"$/, '$1'),
          ];
    }),
  );
}

// What the package issues: every generated cookie value, and ids callers choose.
const service = SessionService.prototype as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
for (const method of ['issueSession', 'rotateSession'] as const) {
  const original = service[method];
  service[method] = async function (this: unknown, ...args: unknown[]) {
    const issued = (await original.apply(this, args)) as { cookieValue?: string } | null;
    keepValue(issued?.cookieValue);
    return issued;
  };
}
const originalCreate = service.create;
service.create = function (this: unknown, ...args: unknown[]) {
  keepValue((args[0] as { id?: unknown } | undefined)?.id);
  return originalCreate.apply(this, args);
};

// What goes over HTTP: values clients send and servers set, and every error body.
const originalEmit = http.Server.prototype.emit;
http.Server.prototype.emit = function (this: http.Server, event: string, ...args: unknown[]) {
  if (event === 'request') {
    const [request, response] = args as [http.IncomingMessage, http.ServerResponse];
    cookieValues(request.headers.cookie).forEach(keepValue);
    const chunks: Buffer[] = [];
    const write = response.write;
    const end = response.end;
    response.write = function (this: http.ServerResponse, chunk: unknown, ...rest: unknown[]) {
      if (chunk) chunks.push(Buffer.from(chunk as string));
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof response.write;
    response.end = function (this: http.ServerResponse, chunk?: unknown, ...rest: unknown[]) {
      if (chunk && typeof chunk !== 'function') chunks.push(Buffer.from(chunk as string));
      if (this.statusCode >= 400) errorBodies.push(Buffer.concat(chunks).toString('utf8'));
      cookieValues(this.getHeader('set-cookie')).forEach(keepValue);
      return (end as (...a: unknown[]) => http.ServerResponse).call(this, chunk, ...rest);
    } as typeof response.end;
    const writeHead = response.writeHead;
    response.writeHead = function (this: http.ServerResponse, ...headArgs: unknown[]) {
      const headers = headArgs.find((arg) => typeof arg === 'object' && arg !== null) as
        Record<string, unknown> | undefined;
      for (const [name, value] of Object.entries(headers ?? {})) {
        if (name.toLowerCase() === 'set-cookie') cookieValues(value).forEach(keepValue);
      }
      return (writeHead as (...a: unknown[]) => http.ServerResponse).apply(this, headArgs);
    } as typeof response.writeHead;
  }
  return (originalEmit as (...a: unknown[]) => boolean).call(this, event, ...args);
} as typeof http.Server.prototype.emit;

// Every log line: Nest's default logger, and whatever logger an app is given.
const LEVELS = ['log', 'error', 'warn', 'debug', 'verbose', 'fatal'] as const;
const consoleLogger = ConsoleLogger.prototype as unknown as Record<string, (...args: unknown[]) => void>;
for (const level of LEVELS) {
  const original = consoleLogger[level];
  consoleLogger[level] = function (this: unknown, ...args: unknown[]) {
    keepLog(level, ...args);
    return original.apply(this, args);
  };
}

/** Forwards to the app's logger (if any) and keeps every line. */
function teeLogger(inner: unknown): LoggerService {
  const target = inner && typeof inner === 'object' ? (inner as Record<string, unknown>) : null;
  const tee = {} as Record<string, (...args: unknown[]) => void>;
  for (const level of LEVELS) {
    tee[level] = (...args: unknown[]) => {
      keepLog(level, ...args);
      const forward = target?.[level];
      if (typeof forward === 'function') forward.apply(target, args);
    };
  }
  return tee as unknown as LoggerService;
}

const factory = NestFactory as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
const originalCreateApp = factory.create.bind(NestFactory);
factory.create = (module: unknown, serverOrOptions?: unknown, options?: unknown) => {
  const adapterGiven = !!(serverOrOptions as { patch?: unknown } | undefined)?.patch;
  const appOptions = ((adapterGiven ? options : serverOrOptions) ?? {}) as { logger?: unknown };
  const withTee = { ...appOptions, logger: teeLogger(appOptions.logger) };
  return adapterGiven ? originalCreateApp(module, serverOrOptions, withTee) : originalCreateApp(module, withTee);
};
const originalCreateContext = factory.createApplicationContext.bind(NestFactory);
factory.createApplicationContext = (module: unknown, options?: unknown) => {
  const appOptions = (options ?? {}) as { logger?: unknown };
  return originalCreateContext(module, { ...appOptions, logger: teeLogger(appOptions.logger) });
};

// Console lines (TypeORM's console loggers write there too).
for (const level of ['log', 'info', 'warn', 'error', 'debug'] as const) {
  const original = console[level].bind(console);
  console[level] = (...args: unknown[]) => {
    keepLog(level, ...args);
    original(...args);
  };
}

afterAll(() => {
  const digest = (value: string) => createHash('sha256').update(value).digest('hex');
  const logs = logText.join('\n');
  const bodies = errorBodies.join('\n');
  const leaks: string[] = [];
  for (const value of values) {
    const shown = `${value.slice(0, 6)}…(${value.length} chars)`;
    if (logs.includes(value)) leaks.push(`cookie value ${shown} in a log line`);
    if (logs.includes(digest(value))) leaks.push(`digest of ${shown} in a log line`);
    if (bodies.includes(value)) leaks.push(`cookie value ${shown} in an error response body`);
  }
  const file = relative(process.cwd(), expect.getState().testPath ?? 'unknown');
  if (process.env.LEAK_REPORT) {
    appendFileSync(
      process.env.LEAK_REPORT,
      `${JSON.stringify({ file, values: values.size, logLines: logText.length, errorBodies: errorBodies.length, leaks })}\n`,
    );
  }
  if (leaks.length > 0) throw new Error(`cookie values leaked in ${file}:\n${leaks.join('\n')}`);
});
