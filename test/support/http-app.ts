import { createHash } from 'node:crypto';
import type { Server } from 'node:http';
import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Inject,
  type INestApplication,
  type LoggerService,
  Module,
  NotFoundException,
  Param,
  Post,
  Req,
  Res,
  type Type,
  UseGuards,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource, DataSourceOptions } from 'typeorm';
import {
  AuthGuard,
  CurrentSession,
  CurrentUser,
  Public,
  type Session,
  SessionCookies,
  type SessionCookieResponse,
  SessionModule,
  type SessionModuleForRootOptions,
  type SessionRequest,
  SessionService,
} from '../../src/index.js';
import { isRefusedPreparedStatement } from './prepared-lookup.js';
import { typeOrmRoot } from './apps.js';

export type HttpPlatform = 'express' | 'fastify';

/** For `describe.each(HTTP_PLATFORMS)('... on %s', (_label, platform) => ...)`. */
export const HTTP_PLATFORMS: [string, HttpPlatform][] = [
  ['express', 'express'],
  ['fastify', 'fastify'],
];

/**
 * Login, logout and rotation as an app writes them with `globalGuard: true` (the
 * README's controller): login and logout are `@Public()`, the rest needs a session.
 * (`@Public()` goes on handlers: on the class it would also exempt a handler's own
 * `@UseGuards(AuthGuard)`, since `getAllAndOverride` reads the class when the handler says nothing.)
 */
@Controller('auth')
export class AuthFixtureController {
  constructor(
    @Inject(SessionCookies) private readonly cookies: SessionCookies,
    @Inject(SessionService) private readonly sessions: SessionService,
  ) {}

  @Public()
  @Post('login')
  @HttpCode(200)
  async login(@Body() body: { userId: string }, @Res({ passthrough: true }) response: SessionCookieResponse) {
    await this.cookies.login(response, body.userId);
    return { ok: true };
  }

  @Public()
  @Post('logout')
  @HttpCode(200)
  async logout(@Req() request: SessionRequest, @Res({ passthrough: true }) response: SessionCookieResponse) {
    await this.cookies.logout(request, response);
    return { ok: true };
  }

  @Post('logout-everywhere')
  @HttpCode(200)
  async logoutEverywhere(@Req() request: SessionRequest, @Res({ passthrough: true }) response: SessionCookieResponse) {
    return { deleted: await this.cookies.logoutEverywhere(request, response) };
  }

  @Post('rotate')
  @HttpCode(200)
  async rotate(@Req() request: SessionRequest, @Res({ passthrough: true }) response: SessionCookieResponse) {
    const rotated = await this.cookies.rotate(request, response);
    return { rotated: rotated !== null };
  }
}

/** How many times a guarded `me` handler ran: proof that a rejected request never reached one. */
export const handlerRuns = { count: 0 };

/** What the guard protects when it is global (`globalGuard: true`). */
@Controller()
export class ProfileFixtureController {
  constructor(
    @Inject(SessionCookies) private readonly cookies: SessionCookies,
    @Inject(SessionService) private readonly sessions: SessionService,
  ) {}

  @Get('me')
  me(@CurrentUser() user: unknown, @CurrentSession() session: Session) {
    handlerRuns.count++;
    return { user, sessionId: session.id, expires: session.expires.toISOString() };
  }

  @Public()
  @Get('public')
  open(@CurrentUser() user: unknown) {
    return { public: true, user: user ?? null };
  }

  @Get('devices')
  async devices(@CurrentSession() current: Session) {
    const sessions = await this.sessions.listByUserId(current.user);
    return sessions.map((session) => ({
      id: session.id,
      created: session.created.toISOString(),
      current: session.id === current.id,
    }));
  }

  @Delete('devices/others')
  async revokeOthers(@CurrentSession() current: Session, @Req() request: SessionRequest) {
    const cookieValue = this.cookies.getCookieValue(request);
    return { deleted: await this.sessions.deleteOtherSessions(current.user, cookieValue ?? '') };
  }

  @Delete('devices/:id')
  async revoke(@CurrentSession() current: Session, @Param('id') id: string) {
    // Only the user's own devices: a session id alone must not let anyone revoke others'.
    if (!(await this.sessions.deleteUserSession(current.user, id))) throw new NotFoundException();
    return { deleted: true };
  }
}

/** Guarded per controller (no global guard). */
@UseGuards(AuthGuard)
@Controller('guarded')
export class GuardedFixtureController {
  @Get('me')
  me(@CurrentUser() user: unknown) {
    handlerRuns.count++;
    return { user };
  }

  @Public()
  @Get('public')
  open() {
    return { public: true };
  }
}

/** A `resolveUser` that tests steer: a map of users, or a thrower. */
export class FixtureUsers {
  users = new Map<string, unknown>();
  failure: Error | null = null;
  calls = 0;

  readonly resolveUser = async (userId: string): Promise<unknown> => {
    this.calls++;
    if (this.failure) throw this.failure;
    return this.users.get(userId) ?? null;
  };
}

/** A Nest logger that keeps every line, to assert what was (and was not) logged. */
export class CapturingLogger implements LoggerService {
  readonly lines: { level: string; message: string }[] = [];
  log(message: unknown, ...rest: unknown[]) {
    this.keep('log', message, rest);
  }
  error(message: unknown, ...rest: unknown[]) {
    this.keep('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]) {
    this.keep('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]) {
    this.keep('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]) {
    this.keep('verbose', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]) {
    this.keep('fatal', message, rest);
  }
  /** Everything logged, one line per call with its context, for `toContain`/`not.toContain`. */
  text(): string {
    return this.lines.map((line) => `${line.level} ${line.message}`).join('\n');
  }
  private keep(level: string, message: unknown, rest: unknown[]) {
    this.lines.push({ level, message: [message, ...rest].map((part) => stringify(part)).join(' ') });
  }
}

function stringify(part: unknown): string {
  if (typeof part === 'string') return part;
  if (part instanceof Error) return `${part.name}: ${part.message}\n${part.stack ?? ''}`;
  try {
    return JSON.stringify(part);
  } catch {
    return String(part);
  }
}

export interface HttpAppOptions {
  /** TypeORM connection options (from `TestDatabase.open()`). */
  database: DataSourceOptions;
  /** `SessionModule.forRoot` options and extras; `purge: false` unless given. */
  session?: SessionModuleForRootOptions;
  /** More TypeORM options, e.g. `{ extra: { connectionTimeoutMillis: 500 } }`. */
  typeorm?: Record<string, unknown>;
  /** Default: the three fixture controllers. */
  controllers?: Type[];
  /** Default: Nest's logger silenced. */
  logger?: LoggerService | false;
  /** Trust `X-Forwarded-For` from any peer: Express `trust proxy` true, Fastify `trustProxy: true`. Default: false. */
  trustProxy?: boolean;
  /** `app.setGlobalPrefix(...)` before init. Default: none. */
  globalPrefix?: string;
}

export interface HttpApp {
  readonly platform: HttpPlatform;
  readonly app: INestApplication;
  /** What supertest takes: `request(http.server)`. */
  readonly server: Server;
  readonly dataSource: DataSource;
  readonly sessions: SessionService;
  close(): Promise<void>;
}

/**
 * Boots an HTTP app the way users do: `NestFactory.create(AppModule, adapter)` with
 * `TypeOrmModule.forRoot` + `SessionModule.forRoot` in its imports, on Express or Fastify.
 */
export async function bootHttpApp(platform: HttpPlatform, options: HttpAppOptions): Promise<HttpApp> {
  @Module({
    imports: [
      typeOrmRoot(options.database, { retryAttempts: 0, ...options.typeorm }),
      SessionModule.forRoot({ purge: false, ...options.session }),
    ],
    controllers: options.controllers ?? [AuthFixtureController, ProfileFixtureController, GuardedFixtureController],
  })
  class AppModule {}

  const trustProxy = options.trustProxy ?? false;
  const adapter = platform === 'fastify' ? new FastifyAdapter({ trustProxy }) : new ExpressAdapter();
  if (platform === 'express' && trustProxy)
    (adapter.getInstance() as { set(name: string, value: unknown): void }).set('trust proxy', true);
  const app = await NestFactory.create(AppModule, adapter, { logger: options.logger ?? false, abortOnError: false });
  if (options.globalPrefix !== undefined) app.setGlobalPrefix(options.globalPrefix);
  await app.init();
  if (platform === 'fastify') await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
  return {
    platform,
    app,
    server: app.getHttpServer() as Server,
    dataSource: app.get<DataSource>(getDataSourceToken()),
    sessions: app.get(SessionService),
    close: () => app.close(),
  };
}

/** The `Set-Cookie` headers of a supertest response, as a list. */
export function setCookies(response: { headers: Record<string, unknown> }): string[] {
  const header = response.headers['set-cookie'];
  return header === undefined ? [] : Array.isArray(header) ? header.map(String) : [String(header)];
}

/** `name=value` from the first `Set-Cookie` for `name`, for the next request's `Cookie` header. */
export function cookiePair(response: { headers: Record<string, unknown> }, name = 'session_id'): string {
  const cookie = setCookies(response).find((line) => line.startsWith(`${name}=`));
  if (!cookie) throw new Error(`no Set-Cookie for ${name}`);
  return cookie.split(';')[0];
}

/** The stored id of a cookie value (ids are hashed by default). */
export function digestOf(cookieValue: string): string {
  return createHash('sha256').update(cookieValue).digest('hex');
}

/**
 * Runs `work` and returns its result with every SQL statement sent to the database
 * meanwhile. Recorded at the driver, below TypeORM, so statements that bypass
 * `DataSource.query` (the guard's lookup may go straight to the pool) count too:
 * on pg every client the pool hands out (`pool.query` checks one out as well); on
 * PGlite the pool stand-in, which TypeORM also uses as its client.
 */
export async function recordQueries<T>(
  dataSource: DataSource,
  work: () => Promise<T>,
): Promise<{ result: T; queries: string[] }> {
  type Queryable = { query: (...args: unknown[]) => unknown };
  type Pool = Queryable & { connect: (...args: unknown[]) => unknown; totalCount?: number };
  const queries: string[] = [];
  const restorers: (() => void)[] = [];
  const wrapped = new Set<Queryable>();
  const instrument = (target: Queryable) => {
    if (wrapped.has(target)) return;
    wrapped.add(target);
    const hadOwn = Object.prototype.hasOwnProperty.call(target, 'query');
    const original = target.query;
    target.query = function (this: unknown, statement: unknown, ...rest: unknown[]) {
      const text = typeof statement === 'string' ? statement : (statement as { text?: string } | null)?.text;
      if (typeof text !== 'string') return original.call(this, statement, ...rest);
      const entry = text.replace(/\s+/g, ' ').trim();
      queries.push(entry);
      const forgetIfRefused = (error: unknown) => {
        if (isRefusedPreparedStatement(statement, error)) queries.splice(queries.lastIndexOf(entry), 1);
      };
      // pg-pool's `pool.query` hands the client a callback; direct callers get a promise.
      const callbackAt = rest.findIndex((arg) => typeof arg === 'function');
      if (callbackAt >= 0) {
        const callback = rest[callbackAt] as (error: unknown, ...results: unknown[]) => void;
        rest[callbackAt] = (error: unknown, ...results: unknown[]) => {
          if (error) forgetIfRefused(error);
          callback(error, ...results);
        };
      }
      const result = original.call(this, statement, ...rest);
      if (result instanceof Promise) result.catch(forgetIfRefused);
      return result;
    };
    restorers.push(() => {
      if (hadOwn) target.query = original;
      else delete (target as Partial<Queryable>).query;
    });
  };
  const pool = (dataSource.driver as unknown as { master: Pool }).master;
  if (typeof pool.totalCount === 'number') {
    // pg.Pool: TypeORM and pool.query both check clients out through connect(callback).
    const originalConnect = pool.connect;
    pool.connect = function (this: Pool, ...args: unknown[]) {
      const [callback] = args;
      if (typeof callback === 'function') {
        return originalConnect.call(this, (error: unknown, client: Queryable | undefined, release: unknown) => {
          if (client) instrument(client);
          (callback as (...a: unknown[]) => void)(error, client, release);
        });
      }
      return (originalConnect.call(this) as Promise<Queryable>).then((client) => {
        instrument(client);
        return client;
      });
    };
    restorers.push(() => delete (pool as Partial<Pool>).connect);
  } else {
    instrument(pool);
  }
  try {
    return { result: await work(), queries };
  } finally {
    for (const restore of restorers.reverse()) restore();
  }
}
