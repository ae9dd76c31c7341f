import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { type INestApplication, Module, UseGuards } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import { GraphQLModule, Query, Resolver } from '@nestjs/graphql';
import { MercuriusDriver, type MercuriusDriverConfig } from '@nestjs/mercurius';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { Server } from 'node:http';
import request from 'supertest';
import type { DataSource } from 'typeorm';
import { AuthGuard, CurrentSession, CurrentUser, type Session, SessionModule, SessionService } from '../src/index.js';
import { typeOrmRoot } from './support/apps.js';
import { TEST_DATABASES, type OpenDatabase } from './support/databases.js';
import { digestOf, setCookies } from './support/http-app.js';

/**
 * `AuthGuard` on GraphQL resolvers, booted the way users do with Nest's two drivers:
 * Apollo over Express (the response is the request's `req.res`) and Mercurius over
 * Fastify (the response is the context's `reply`). The guard finds the request in the
 * GraphQL context, `@CurrentUser()` and `@CurrentSession()` work in resolvers, a sliding
 * renewal sets the cookie on the right response, and a call without an HTTP request
 * (RPC, WebSockets) is denied.
 */
/** How many times the guarded resolver ran: proof that a refused call never reached it. */
const meRuns = { count: 0 };

@Resolver()
class AccountResolver {
  @Query('me')
  @UseGuards(AuthGuard)
  me(@CurrentUser() user: { id: string }, @CurrentSession() session: Session): string {
    meRuns.count++;
    return `${user.id} ${session.id}`;
  }

  @Query('hello')
  hello(): string {
    return 'hello';
  }
}

const typeDefs = 'type Query { me: String! hello: String! }';

/** A GraphQL server as an app sets it up: the driver's module, on the HTTP platform it runs on. */
type GraphQLServer = 'apollo' | 'mercurius';
const GRAPHQL_SERVERS: [string, GraphQLServer][] = [
  ['Apollo over Express', 'apollo'],
  ['Mercurius over Fastify', 'mercurius'],
];

function graphQLModule(server: GraphQLServer) {
  return server === 'apollo'
    ? GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, typeDefs })
    : GraphQLModule.forRoot<MercuriusDriverConfig>({ driver: MercuriusDriver, typeDefs });
}

describe.each(TEST_DATABASES.filter(([, database]) => database.pooler === undefined))(
  'AuthGuard on GraphQL resolvers on %s',
  (_label, database) => {
    let db: OpenDatabase;
    let app: INestApplication;
    let server: Server;
    let sessions: SessionService;

    async function boot(graphQLServer: GraphQLServer) {
      @Module({
        imports: [
          typeOrmRoot(db.options),
          SessionModule.forRoot({ purge: false, rolling: true, ttl: 60_000 }),
          graphQLModule(graphQLServer),
        ],
        providers: [AccountResolver],
      })
      class GraphQLApp {}
      const options = { logger: false as const, abortOnError: false };
      app =
        graphQLServer === 'apollo'
          ? await NestFactory.create(GraphQLApp, options)
          : await NestFactory.create(GraphQLApp, new FastifyAdapter(), options);
      await app.init();
      if (graphQLServer === 'mercurius') {
        await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
      }
      server = app.getHttpServer() as Server;
      sessions = app.get(SessionService);
    }

    const setExpiresIn = (cookieValue: string, seconds: number) =>
      app
        .get<DataSource>(getDataSourceToken())
        .query(`UPDATE sessions SET expires = now() + $2 * interval '1 second' WHERE id = $1`, [
          digestOf(cookieValue),
          seconds,
        ]);

    const ask = (query: string, cookie?: string) => {
      const call = request(server).post('/graphql').send({ query });
      return cookie ? call.set('Cookie', cookie) : call;
    };

    beforeAll(async () => {
      db = await database.open();
    });
    afterAll(async () => {
      await db.dispose();
    });

    describe.each(GRAPHQL_SERVERS)("with %s and the driver's default context", (_serverLabel, graphQLServer) => {
      beforeAll(() => boot(graphQLServer));
      afterAll(() => app.close());

      it('answers the guarded query with the user and session of a valid cookie', async () => {
        const cookieValue = await sessions.createSessionForUser('alice');
        const runs = meRuns.count;
        const response = await ask('{ me }', `session_id=${cookieValue}`).expect(200);
        expect(response.body).toEqual({ data: { me: `alice ${digestOf(cookieValue)}` } });
        expect(meRuns.count).toBe(runs + 1);
      });

      it('refuses it without a cookie, with a forged one and with an expired one; the handler never runs', async () => {
        const expired = await sessions.createSessionForUser('bob');
        await setExpiresIn(expired, -1);
        const runs = meRuns.count;
        for (const cookie of [undefined, 'session_id=forged', `session_id=${expired}`]) {
          const response = await ask('{ me }', cookie);
          expect(response.body.data).toBeNull();
          expect(response.body.errors).toEqual([expect.objectContaining({ message: 'Unauthorized' })]);
        }
        expect(meRuns.count).toBe(runs);
      });

      it('leaves unguarded queries alone', async () => {
        await ask('{ hello }').expect(200, { data: { hello: 'hello' } });
      });

      it(`refreshes the cookie on a sliding renewal (through ${graphQLServer === 'apollo' ? 'Express `req.res`' : 'Mercurius `reply`'})`, async () => {
        const cookieValue = await sessions.createSessionForUser('carol');
        await setExpiresIn(cookieValue, 10); // past half the 60 s ttl: this request renews it
        const response = await ask('{ me }', `session_id=${cookieValue}`).expect(200);
        expect(response.body.data.me).toBe(`carol ${digestOf(cookieValue)}`);
        expect(setCookies(response)).toEqual([expect.stringMatching(new RegExp(`^session_id=${cookieValue};`))]);
      });
    });

    describe('calls with no HTTP request at all (RPC, WebSockets)', () => {
      beforeAll(() => boot('apollo'));
      afterAll(() => app.close());

      it.each(['rpc', 'ws'])('denies a %s call instead of reading a cookie it cannot have', async (type) => {
        const cookieValue = await sessions.createSessionForUser('erin');
        // What Nest hands a guard for a message handler: the payload and the transport's context.
        const context = new ExecutionContextHost(
          [{ headers: { cookie: `session_id=${cookieValue}` } }, {}],
          AccountResolver,
          AccountResolver.prototype.me,
        );
        context.setType(type);
        expect(await app.get(AuthGuard).canActivate(context)).toBe(false);
      });
    });
  },
);
