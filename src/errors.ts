/**
 * Thrown by `SessionService.create` when the session it is given cannot be stored:
 * an empty user, an invalid date, `expires` not after `created`, or an id that
 * could never be a cookie value. Nothing is written when it is thrown.
 * @publicApi
 */
export class InvalidSessionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidSessionError';
  }
}

/**
 * Thrown by `SessionService.create` when a session with the same id already
 * exists: sessions are never overwritten.
 * @publicApi
 */
export class DuplicateSessionError extends InvalidSessionError {
  constructor() {
    super('A session with this id already exists; session ids are never overwritten.');
    this.name = 'DuplicateSessionError';
  }
}

/**
 * Thrown at startup when the module is configured in a way that cannot work.
 * The message says what to change.
 * @publicApi
 */
export class SessionConfigurationError extends Error {
  constructor(message: string) {
    super(`nestjs-typeorm-session: ${message}`);
    this.name = 'SessionConfigurationError';
  }
}

/** @internal The SQLSTATE of a driver error, through TypeORM's QueryFailedError wrapper. */
export function databaseErrorCode(error: unknown): string | undefined {
  const candidate = error as { code?: unknown; driverError?: { code?: unknown } } | null;
  const code = candidate?.driverError?.code ?? candidate?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * @internal One line describing a database error for logs: name, message and SQLSTATE,
 * never the query parameters (they may hold session ids).
 */
export function describeDatabaseError(error: unknown): string {
  if (error instanceof Error) {
    const code = databaseErrorCode(error);
    return `${error.name}: ${error.message}${code ? ` (SQLSTATE ${code})` : ''}`;
  }
  return String(error);
}
