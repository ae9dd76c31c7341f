import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

// Cost: N = 2^15, r = 8, p = 1 takes ~50-100 ms and 32 MiB per hash here; raising N
// makes guessing dearer for an attacker holding the table and login slower for everyone.
const SCRYPT_OPTIONS: ScryptOptions = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };
const KEY_BYTES = 64;
const SALT_BYTES = 16;

/** What the users table stores for a password. */
export interface PasswordHash {
  passwordHash: string;
  passwordSalt: string;
}

function deriveKey(password: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFKC'), salt, KEY_BYTES, SCRYPT_OPTIONS, (error, key) =>
      error ? reject(error) : resolve(key),
    ),
  );
}

/** Hashes `password` with a fresh random salt (per user, and again on every change). */
export async function hashPassword(password: string): Promise<PasswordHash> {
  const salt = randomBytes(SALT_BYTES);
  const key = await deriveKey(password, salt);
  return { passwordHash: key.toString('hex'), passwordSalt: salt.toString('hex') };
}

/** True when `password` is the one behind `stored`, compared in constant time. */
export async function verifyPassword(password: string, stored: PasswordHash): Promise<boolean> {
  const expected = Buffer.from(stored.passwordHash, 'hex');
  const key = await deriveKey(password, Buffer.from(stored.passwordSalt, 'hex'));
  return key.length === expected.length && timingSafeEqual(key, expected);
}

// Hashed once at startup so that a login for an unknown user costs as much as one for a
// known user: response time does not tell which usernames exist.
let decoy: Promise<PasswordHash> | undefined;

/** Spends the time of one `verifyPassword` and returns false. */
export async function verifyAgainstDecoy(password: string): Promise<false> {
  decoy ??= hashPassword(randomBytes(SALT_BYTES).toString('hex'));
  await verifyPassword(password, await decoy);
  return false;
}
