import { PREPARED_STATEMENT_REFUSALS } from '../../src/session.store.js';

/**
 * The guard's lookup runs as a named (prepared) statement on pg. When the server refuses
 * it (PgBouncer in transaction mode: SQLSTATE 26000 or 42P05), the package sends it again
 * unnamed, in the same call (src/session.store.ts). Statement recorders drop the refused
 * attempt: it is not a second statement of the request, and not an error anyone sees.
 */
export function isRefusedPreparedStatement(statement: unknown, error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return (
    typeof (statement as { name?: unknown } | null)?.name === 'string' &&
    typeof code === 'string' &&
    PREPARED_STATEMENT_REFUSALS.has(code)
  );
}
