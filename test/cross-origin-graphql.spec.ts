import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { type INestApplication, Module, UseGuards } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { GraphQLModule, Mutation, Query, Resolver } from '@nestjs/graphql';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { Server } from 'node:http';
import request from 'supertest';
import type { DataSource } from 'typeorm';
import { AuthGuard, CROSS_ORIGIN_REQUEST, CurrentUser, SessionModule, SessionService } from '../src/index.js';
import { typeOrmRoot } from './support/apps.js';
import { TEST_DATABASES, type OpenDatabase } from './support/databases.js';
import { recordQueries } from './support/http-app.js';

/** How many times the mutation ran. */
const deletions = { count: 0 };

@Resolver()
class AccountResolver {
  @Query('me')
  @UseGuards(AuthGuard)
  me(@CurrentUser() user: { id: string }): string {
    return user.id;
  }

  @Mutation('deleteAccount')
  @UseGuards(AuthGuard)
  deleteAccount(@CurrentUser() user: { id: string }): string {
    deletions.count++;
    return `deleted ${user.id}`;
  }
}

const typeDefs = 'type Query { me: String! } type Mutation { deleteAccount: String! }';

/**
 * `crossOriginProtection` on GraphQL over HTTP (Nest's Apollo driver): the guard reads the
 * method and headers of the request in the GraphQL context, so a mutation posted from
 * another origin is refused before the session lookup, and the same one from the app's
 * own page runs.
 */
describe.each(TEST_DATABASES.filter(([, database]) => database.pooler === undefined))(
  'crossOriginProtection on a GraphQL mutation on %s',
  (_label, database) => {
    let db: OpenDatabase;
    let app: INestApplication;
    let server: Server;
    let cookie: string;

    beforeAll(async () => {
      db = await database.open();
      @Module({
        imports: [
          typeOrmRoot(db.options),
          SessionModule.forRoot({ purge: false }),
          GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, typeDefs }),
        ],
        providers: [AccountResolver],
      })
      class GraphQLApp {}
      app = await NestFactory.create(GraphQLApp, { logger: false, abortOnError: false });
      await app.init();
      server = app.getHttpServer() as Server;
      cookie = `session_id=${await app.get(SessionService).createSessionForUser('alice')}`;
    });
    afterAll(async () => {
      await app?.close();
      await db?.dispose();
    });

    const mutate = (headers: Record<string, string>) =>
      request(server).post('/graphql').set(headers).set('Cookie', cookie).send({ query: 'mutation { deleteAccount }' });

    it('refuses the mutation from another origin, without a query, and runs it from the app itself', async () => {
      const before = deletions.count;
      const dataSource = app.get<DataSource>(getDataSourceToken());
      const forged: Record<string, string>[] = [
        { 'Sec-Fetch-Site': 'cross-site', Origin: 'https://evil.example' },
        { 'Sec-Fetch-Site': 'same-site', Origin: 'https://blog.app.example' },
        { Origin: 'https://evil.example' }, // a browser without Sec-Fetch-Site
      ];
      for (const headers of forged) {
        const { result: response, queries } = await recordQueries(dataSource, () => mutate(headers));
        expect(response.body.data).toBeNull();
        expect(response.body.errors).toEqual([
          expect.objectContaining({ message: expect.stringContaining('Cross-origin request refused') }),
        ]);
        expect(JSON.stringify(response.body.errors[0].extensions)).toContain(CROSS_ORIGIN_REQUEST);
        expect(queries).toEqual([]);
      }
      expect(deletions.count).toBe(before);

      const own = await mutate({ 'Sec-Fetch-Site': 'same-origin' });
      expect(own.body).toEqual({ data: { deleteAccount: 'deleted alice' } });
      expect(deletions.count).toBe(before + 1);
    });

    it('leaves a guarded query sent by GET (a safe method) to the session check', async () => {
      const response = await request(server)
        .get('/graphql?query=%7Bme%7D')
        .set('Sec-Fetch-Site', 'cross-site')
        .set('Apollo-Require-Preflight', 'true')
        .set('Cookie', cookie);
      expect(response.body).toEqual({ data: { me: 'alice' } });
    });
  },
);
