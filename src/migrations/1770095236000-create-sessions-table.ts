import type { MigrationInterface, QueryRunner } from 'typeorm';
import { Table, TableIndex } from 'typeorm';

/**
 * Creates the `sessions` table with indexes on `"user"` (logout everywhere,
 * device lists) and `expires` (the purge). Built with TypeORM's schema API so it
 * lands in the data source's configured `schema`.
 * @publicApi
 */
export class CreateSessionsTable1770095236000 implements MigrationInterface {
  name = 'CreateSessionsTable1770095236000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.createTable(
      new Table({
        name: 'sessions',
        columns: [
          {
            name: 'id',
            type: 'varchar',
            length: '255',
            isPrimary: true,
            primaryKeyConstraintName: 'PK_sessions',
          },
          { name: 'user', type: 'varchar', length: '255', isNullable: false },
          { name: 'created', type: 'timestamptz', isNullable: false },
          { name: 'expires', type: 'timestamptz', isNullable: false },
        ],
      }),
    );
    await queryRunner.createIndex('sessions', new TableIndex({ name: 'IDX_sessions_user', columnNames: ['user'] }));
    await queryRunner.createIndex(
      'sessions',
      new TableIndex({ name: 'IDX_sessions_expires', columnNames: ['expires'] }),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropIndex('sessions', 'IDX_sessions_expires');
    await queryRunner.dropIndex('sessions', 'IDX_sessions_user');
    await queryRunner.dropTable('sessions');
  }
}
