import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Installs the triggers that keep `cache: true` correct: after every UPDATE or DELETE on
 * `sessions` (from the package, another instance, or psql) one statement-level trigger
 * NOTIFYs the ids of the rows that were live before it, on a channel named after the
 * table's oid (two session tables never share one). NOTIFY is delivered on commit only.
 * A payload is at most 8000 bytes, so ids go in chunks of under 7900; above
 * `FLUSH_ABOVE_ROWS` rows, and on TRUNCATE, one `*` tells every cache to flush.
 * Rows already expired (what the purge deletes) are not announced: no cache answers for them.
 * Harmless with the cache off (a trigger that finds nothing to say costs one scan of the
 * statement's transition table).
 * @publicApi
 */
export class AddSessionCacheTrigger1770500000000 implements MigrationInterface {
  name = 'AddSessionCacheTrigger1770500000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const { table, fn } = names(queryRunner);
    await queryRunner.query(
      `CREATE FUNCTION ${fn('nts_session_cache_invalidate')}() RETURNS trigger LANGUAGE plpgsql AS $body$
       DECLARE
         channel text := 'nts_session_cache_' || TG_RELID::bigint::text;
         payload text;
       BEGIN
         IF (SELECT count(*) FROM (SELECT 1 FROM old_rows WHERE expires > now() LIMIT ${FLUSH_ABOVE_ROWS + 1}) live)
            > ${FLUSH_ABOVE_ROWS} THEN
           PERFORM pg_notify(channel, '*');
           RETURN NULL;
         END IF;
         FOR payload IN
           SELECT string_agg(id, ' ') FROM (
             SELECT id, (sum(octet_length(id) + 1) OVER (ORDER BY id) - 1) / 7900 AS part
             FROM old_rows WHERE expires > now()
           ) ids GROUP BY part
         LOOP
           PERFORM pg_notify(channel, payload);
         END LOOP;
         RETURN NULL;
       END
       $body$`,
    );
    await queryRunner.query(
      `CREATE FUNCTION ${fn('nts_session_cache_flush')}() RETURNS trigger LANGUAGE plpgsql AS $body$
       BEGIN
         PERFORM pg_notify('nts_session_cache_' || TG_RELID::bigint::text, '*');
         RETURN NULL;
       END
       $body$`,
    );
    // One trigger per event: a trigger with transition tables may have only one event.
    for (const event of ['UPDATE', 'DELETE'] as const) {
      await queryRunner.query(
        `CREATE TRIGGER nts_session_cache_${event.toLowerCase()} AFTER ${event} ON ${table}
         REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ${fn('nts_session_cache_invalidate')}()`,
      );
    }
    await queryRunner.query(
      `CREATE TRIGGER nts_session_cache_truncate AFTER TRUNCATE ON ${table}
       FOR EACH STATEMENT EXECUTE FUNCTION ${fn('nts_session_cache_flush')}()`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    const { table, fn } = names(queryRunner);
    for (const trigger of ['truncate', 'delete', 'update']) {
      await queryRunner.query(`DROP TRIGGER IF EXISTS nts_session_cache_${trigger} ON ${table}`);
    }
    await queryRunner.query(`DROP FUNCTION IF EXISTS ${fn('nts_session_cache_flush')}()`);
    await queryRunner.query(`DROP FUNCTION IF EXISTS ${fn('nts_session_cache_invalidate')}()`);
  }
}

/** More live rows than this in one statement: one "flush all" instead of their ids. */
const FLUSH_ABOVE_ROWS = 1000;

/** The table and its functions, in the data source's configured `schema` like the table migration puts them. */
function names(queryRunner: QueryRunner): { table: string; fn: (name: string) => string } {
  const schema = (queryRunner.connection.driver.options as { schema?: string }).schema;
  const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;
  const qualify = (name: string) => (schema ? `${quote(schema)}.${quote(name)}` : quote(name));
  return { table: qualify('sessions'), fn: qualify };
}
