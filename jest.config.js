/**
 * NestJS 12 ships ESM only, so jest runs in native ESM mode
 * (`NODE_OPTIONS=--experimental-vm-modules`, set by `npm test`).
 */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: {
    // Sources import './x.js' (NodeNext); jest resolves the .ts file behind it.
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }],
  },
  testMatch: ['<rootDir>/test/**/*.spec.ts', '<rootDir>/src/**/*.spec.ts'],
  testTimeout: 30000,
  // Which services this run has (PostgreSQL, PgBouncer, Chromium, initdb), reported at the
  // start and again at the end; one PgBouncer (transaction pooling) for the run when installed.
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  // `npm test` runs two files at a time; the load tests hold a lock that makes them run alone.
  setupFilesAfterEnv: ['<rootDir>/test/support/suite-lock.ts'],
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
};
