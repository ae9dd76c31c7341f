import type { MigrationInterface, QueryRunner } from 'typeorm';
import { TableColumn } from 'typeorm';

/**
 * Adds `user_agent`, `ip` and `last_seen` to `sessions`, all nullable without a default,
 * which PostgreSQL 11+ does without rewriting the table (existing rows read as null), and
 * the index behind "this user's least recently used sessions" (`maxSessionsPerUser`) and
 * "newest activity first" (`listByUserId`): `("user", coalesce(last_seen, created))`, so
 * rows from before the migration order by their creation. Building the index holds off
 * writes to the table while it runs (migrations run in a transaction, so not
 * `CONCURRENTLY`): on a very large table create it beforehand with `CREATE INDEX
 * CONCURRENTLY` under the same name, and `IF NOT EXISTS` skips it here.
 * @publicApi
 */
export class AddSessionDeviceInfo1770600000000 implements MigrationInterface {
  name = 'AddSessionDeviceInfo1770600000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const table = await queryRunner.getTable('sessions');
    await queryRunner.addColumns(table!, [
      new TableColumn({ name: 'user_agent', type: 'varchar', length: '512', isNullable: true }),
      new TableColumn({ name: 'ip', type: 'varchar', length: '64', isNullable: true }),
      new TableColumn({ name: 'last_seen', type: 'timestamptz', isNullable: true }),
    ]);
    await queryRunner.query(
      `CREATE INDEX IF NOT EXISTS "IDX_sessions_user_activity" ON ${quotedTable(queryRunner)} ("user", coalesce(last_seen, created))`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX IF EXISTS ${quotedSchema(queryRunner)}"IDX_sessions_user_activity"`);
    await queryRunner.dropColumns('sessions', ['last_seen', 'ip', 'user_agent']);
  }
}

/** The data source's configured schema, quoted with a trailing dot, or nothing (the search path decides). */
function quotedSchema(queryRunner: QueryRunner): string {
  const schema = (queryRunner.connection.options as { schema?: string }).schema;
  return schema ? `"${schema.replace(/"/g, '""')}".` : '';
}

function quotedTable(queryRunner: QueryRunner): string {
  return `${quotedSchema(queryRunner)}"sessions"`;
}
