// The consumer check's entry point (test/consumers/run.mjs compiles the app and runs
// `node dist/check.js express|fastify` once the app's TypeORM CLI has run the migration).
// It boots the app as a user's main.ts does and exits non-zero on the first failed assertion.
import 'reflect-metadata';
import { strict as assert } from 'node:assert';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { SchedulerRegistry } from '@nestjs/schedule';
import { SESSION_PURGE_JOB_NAME, SessionPurgeService, SessionService } from 'nestjs-typeorm-session';
import { AppModule } from './app.module.js';
import { checkHttpFlow } from './http-flow.js';
import { sessionServiceChecks } from './session-service.checks.js';

async function main(platform: string): Promise<void> {
  if (platform !== 'express' && platform !== 'fastify') throw new Error('usage: node dist/check.js express|fastify');
  const adapter = platform === 'express' ? new ExpressAdapter() : new FastifyAdapter();
  const app = await NestFactory.create(AppModule, adapter, { logger: ['error', 'warn'] });
  try {
    await app.listen(0, '127.0.0.1');
    await checkHttpFlow(await app.getUrl(), `${platform}-http-user`);
    console.log(`    ok  log in → guarded 200 → log out → 401`);

    const sessions = app.get(SessionService);
    const checks = Object.entries(sessionServiceChecks(sessions, platform));
    for (const [method, check] of checks) {
      await check().catch((error: unknown) => {
        console.error(`    FAILED SessionService.${method}`);
        throw error;
      });
    }
    console.log(
      `    ok  all ${checks.length} public SessionService methods: ${checks.map(([method]) => method).join(', ')}`,
    );

    assert.ok(app.get(SchedulerRegistry).getCronJob(SESSION_PURGE_JOB_NAME), "the purge job is in the app's registry");
    // The checks above left expired rows (`<platform>-get-expired` among them).
    assert.equal((await sessions.get(`${platform}-get-expired`))?.isExpired(), true);
    assert.ok((await app.get(SessionPurgeService).purgeExpired()) > 0, 'purgeExpired deletes expired rows');
    assert.equal(await sessions.get(`${platform}-get-expired`), null);
    console.log(`    ok  purge job in @nestjs/schedule's registry; purgeExpired() deletes expired rows`);
  } finally {
    await app.close();
  }
}

main(process.argv[2]).catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
