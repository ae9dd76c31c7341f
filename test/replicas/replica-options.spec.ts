import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type DataSourceOptions } from 'typeorm';
import {
  Session,
  SessionConfigurationError,
  SessionModule,
  type SessionModuleForRootOptions,
} from '../../src/index.js';
import { resolveSessionOptions } from '../../src/session.options.js';
import { TEST_DATABASES, type OpenDatabase } from '../support/databases.js';

describe('readFromReplicas options', () => {
  it('is off by default, and true takes the defaults', () => {
    expect(resolveSessionOptions({}).readFromReplicas).toBeNull();
    expect(resolveSessionOptions({ readFromReplicas: false }).readFromReplicas).toBeNull();
    expect(resolveSessionOptions({ readFromReplicas: true }).readFromReplicas).toEqual({
      maxLagMs: 2000,
      checkIntervalMs: 200,
      queryTimeoutMs: 1000,
      listenUrl: null,
    });
  });

  it.each<[string, SessionModuleForRootOptions['readFromReplicas'], SessionModuleForRootOptions['cache'], RegExp]>([
    ['a string', 'yes' as never, undefined, /readFromReplicas must be true, false or \{/],
    ['a zero maxLagMs', { maxLagMs: 0 }, undefined, /readFromReplicas.maxLagMs must be a whole number/],
    ['a fractional checkIntervalMs', { checkIntervalMs: 20.5 }, undefined, /checkIntervalMs must be a whole number/],
    [
      'maxLagMs not above checkIntervalMs (no standby could ever be used)',
      { maxLagMs: 200, checkIntervalMs: 200 },
      undefined,
      /maxLagMs \(200\) must exceed checkIntervalMs \(200\)/,
    ],
    ['a listenUrl that is not postgres://', { listenUrl: 'http://db' }, undefined, /listenUrl must be a postgres:\/\//],
    [
      'a listenUrl with the cache on (one listener serves both)',
      { listenUrl: 'postgres://db/app' },
      true,
      /set cache.listenUrl instead/,
    ],
  ])('refuses %s, naming the fix', (_name, readFromReplicas, cache, message) => {
    let failure: unknown;
    try {
      resolveSessionOptions({ readFromReplicas, cache });
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(SessionConfigurationError);
    expect((failure as Error).message).toMatch(message);
  });
});

describe.each(TEST_DATABASES)('readFromReplicas on %s without standbys', (label, database) => {
  let db: OpenDatabase;
  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(() => db.dispose());

  it('stops startup with a SessionConfigurationError naming the fix', async () => {
    // The data source is created here so it can be closed: a failed compile cannot be.
    const opened: Promise<DataSource>[] = [];
    const typeOrm = TypeOrmModule.forRootAsync({
      useFactory: () => ({ ...db.options, entities: [Session] }) as DataSourceOptions,
      dataSourceFactory: async (options) => {
        const initialized = new DataSource(options!).initialize();
        opened.push(initialized);
        return initialized;
      },
    });
    let failure: unknown;
    try {
      await Test.createTestingModule({
        imports: [typeOrm, SessionModule.forRoot({ purge: false, readFromReplicas: true })],
      }).compile();
    } catch (error) {
      failure = error;
    } finally {
      await Promise.all(opened.map(async (initialized) => (await initialized).destroy()));
    }
    expect(failure).toBeInstanceOf(SessionConfigurationError);
    expect((failure as Error).message).toMatch(
      label === 'pglite' ? /PGlite.*has none: remove readFromReplicas/ : /replication: \{ master: .*slaves: /,
    );
  });
});
