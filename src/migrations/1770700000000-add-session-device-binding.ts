import type { MigrationInterface, QueryRunner } from 'typeorm';
import { TableColumn } from 'typeorm';

/**
 * Adds what `deviceBinding` (DBSC) keeps on the session row, all nullable without a default
 * (no table rewrite; existing sessions read as unbound): the device's public key
 * (`device_key`, a P-256 JWK), the DBSC session identifier the browser names the session by
 * (`device_session_id`, kept across rotations), the SHA-256 digests and expiries of the
 * current and previous bound cookie (`bound_cookie`, `previous_bound_cookie`, read by the
 * guard's one primary-key lookup), and the challenges still open (`device_challenges`, a
 * short JSON list). No index: the endpoints find the row by the session cookie, as the guard does.
 * @publicApi
 */
export class AddSessionDeviceBinding1770700000000 implements MigrationInterface {
  name = 'AddSessionDeviceBinding1770700000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const table = await queryRunner.getTable('sessions');
    await queryRunner.addColumns(table!, [
      new TableColumn({ name: 'device_key', type: 'jsonb', isNullable: true }),
      new TableColumn({ name: 'device_session_id', type: 'varchar', length: '64', isNullable: true }),
      new TableColumn({ name: 'bound_cookie', type: 'varchar', length: '64', isNullable: true }),
      new TableColumn({ name: 'bound_cookie_expires', type: 'timestamptz', isNullable: true }),
      new TableColumn({ name: 'previous_bound_cookie', type: 'varchar', length: '64', isNullable: true }),
      new TableColumn({ name: 'previous_bound_cookie_expires', type: 'timestamptz', isNullable: true }),
      new TableColumn({ name: 'device_challenges', type: 'jsonb', isNullable: true }),
    ]);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.dropColumns('sessions', [
      'device_challenges',
      'previous_bound_cookie_expires',
      'previous_bound_cookie',
      'bound_cookie_expires',
      'bound_cookie',
      'device_session_id',
      'device_key',
    ]);
  }
}
