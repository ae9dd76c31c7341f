import {
  type CanActivate,
  type ExecutionContext,
  Inject,
  Injectable,
  Module,
  UnauthorizedException,
} from '@nestjs/common';
import { createHash } from 'node:crypto';
import pg from 'pg';
import { DEFAULT_COOKIE_NAME } from '../../src/index.js';
import { type GuardedRequest, meController } from './me.controller.js';
import { serve } from './serve.js';

const PG_POOL = Symbol('PG_POOL');

/**
 * App 2's guard: the least any database-backed session check does. It reads the
 * cookie, hashes it like the package stores it, and runs one primary-key SELECT on
 * a plain `pg.Pool` (default size 10, like TypeORM's), prepared once per connection as
 * the package prepares its lookup: the best a hand-written guard can do. No ORM, no
 * expiry handling.
 */
@Injectable()
class PgSessionGuard implements CanActivate {
  constructor(@Inject(PG_POOL) private readonly pool: pg.Pool) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<GuardedRequest & { headers: { cookie?: string } }>();
    const cookieValue = readCookie(request.headers.cookie, DEFAULT_COOKIE_NAME);
    if (!cookieValue) throw new UnauthorizedException();
    const { rows } = await this.pool.query<{ user: string }>({
      name: 'bench_pg_guard_lookup',
      text: 'SELECT "user" FROM sessions WHERE id = $1 AND expires > now()',
      values: [createHash('sha256').update(cookieValue).digest('hex')],
    });
    if (rows.length === 0) throw new UnauthorizedException();
    request.user = { id: rows[0].user };
    return true;
  }
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const pair of header.split(';')) {
    const separator = pair.indexOf('=');
    if (separator > 0 && pair.slice(0, separator).trim() === name) return pair.slice(separator + 1).trim();
  }
  return undefined;
}

@Module({
  controllers: [meController(PgSessionGuard)],
  providers: [
    PgSessionGuard,
    { provide: PG_POOL, useFactory: () => new pg.Pool({ connectionString: process.env.DATABASE_URL }) },
  ],
})
class PgGuardApp {}

await serve(PgGuardApp);
