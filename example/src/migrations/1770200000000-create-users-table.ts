import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The demo's own table, run after the package's `sessionMigrations`. */
export class CreateUsersTable1770200000000 implements MigrationInterface {
  name = 'CreateUsersTable1770200000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE users (
        id uuid PRIMARY KEY,
        username varchar(20) NOT NULL,
        password_hash varchar(128) NOT NULL,
        password_salt varchar(64) NOT NULL,
        created timestamptz NOT NULL DEFAULT now()
      )`);
    // "Alice" and "alice" are one account: a look-alike name cannot be registered.
    await queryRunner.query('CREATE UNIQUE INDEX "IDX_users_username_lower" ON users (lower(username))');
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query('DROP TABLE users');
  }
}
