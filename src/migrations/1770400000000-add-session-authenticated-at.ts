import type { MigrationInterface, QueryRunner } from 'typeorm';
import { TableColumn } from 'typeorm';

/**
 * Adds `authenticated_at` (when the user last proved who they are, for
 * `@RequireRecentLogin`), filled from `created` for existing sessions: their login was
 * their creation. Left nullable so that an instance still running the previous version
 * can keep inserting sessions during a rolling deploy; the package reads a NULL as
 * `created`. Built with TypeORM's schema API so it lands in the configured `schema`.
 * @publicApi
 */
export class AddSessionAuthenticatedAt1770400000000 implements MigrationInterface {
  name = 'AddSessionAuthenticatedAt1770400000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.addColumn(
      'sessions',
      new TableColumn({ name: 'authenticated_at', type: 'timestamptz', isNullable: true }),
    );
    const { schema, tableName } = queryRunner.connection.driver.parseTableName('sessions');
    const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;
    const table = schema ? `${quote(schema)}.${quote(tableName)}` : quote(tableName);
    await queryRunner.query(`UPDATE ${table} SET authenticated_at = created WHERE authenticated_at IS NULL`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropColumn('sessions', 'authenticated_at');
  }
}
