import { compactVerify, errors, type JWK } from 'jose';

/**
 * @internal Verification of the DBSC proof (the `Secure-Session-Response` JWT), strictly:
 * a compact JWS whose protected header has `typ: "dbsc+jwt"` and `alg: "ES256"` (the only
 * algorithm the module offers: never `none`, RS256 or HMAC), signed by a P-256 public key;
 * a JSON-object payload with a `jti` (the challenge) string. `jose` does the JWS work
 * (base64url, JSON, `crit`, the ECDSA signature in its JOSE form), so none of it is
 * hand-rolled. `iat` and `aud` are not checked: the spec requires neither, and the
 * one-time challenge tied to this session, with its own expiry, is what makes a proof fresh.
 */

/** The public key a session is bound to: exactly the four members of a P-256 JWK. */
export interface DevicePublicKey {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
}

/** Why a proof was refused: `signature` only when all else was well-formed and the signature did not verify. */
export type ProofRefusal = 'malformed' | 'signature';

export type ProofCheck<T> = { ok: true; challenge: string; value: T } | { ok: false; refusal: ProofRefusal };

const MAX_PROOF_LENGTH = 8192;
const MAX_CHALLENGE_LENGTH = 256;
// A P-256 coordinate: 32 bytes, base64url without padding.
const COORDINATE_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** A registration proof: signed by the key its header carries, which is returned. */
export async function verifyRegistrationProof(token: string): Promise<ProofCheck<DevicePublicKey>> {
  let key: DevicePublicKey | null = null;
  const check = await verify(token, (header) => {
    key = devicePublicKey(header.jwk);
    if (key === null) throw new MalformedProof();
    return key as unknown as JWK;
  });
  if (!check.ok) return check;
  return { ok: true, challenge: check.challenge, value: key! };
}

/**
 * A refresh proof: signed by the key the session is bound to. A `jwk` in its header (the
 * spec says there is none at refresh) is ignored: the stored key alone decides.
 */
export async function verifyRefreshProof(token: string, storedKey: DevicePublicKey): Promise<ProofCheck<null>> {
  const check = await verify(token, () => storedKey as unknown as JWK);
  if (!check.ok) return check;
  return { ok: true, challenge: check.challenge, value: null };
}

/** The stored form of a JWK, or null unless it is an EC P-256 public key (a private `d` is refused too). */
export function devicePublicKey(jwk: unknown): DevicePublicKey | null {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) return null;
  const { kty, crv, x, y, d } = jwk as Record<string, unknown>;
  if (kty !== 'EC' || crv !== 'P-256' || d !== undefined) return null;
  if (typeof x !== 'string' || typeof y !== 'string' || !COORDINATE_PATTERN.test(x) || !COORDINATE_PATTERN.test(y)) {
    return null;
  }
  return { kty, crv, x, y };
}

class MalformedProof extends Error {}

async function verify(
  token: string,
  keyFor: (header: Record<string, unknown>) => JWK,
): Promise<{ ok: true; challenge: string } | { ok: false; refusal: ProofRefusal }> {
  if (token.length > MAX_PROOF_LENGTH || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) {
    return { ok: false, refusal: 'malformed' };
  }
  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(
      token,
      (header) => {
        if (header.typ !== 'dbsc+jwt' || header.alg !== 'ES256') throw new MalformedProof();
        return keyFor(header as unknown as Record<string, unknown>);
      },
      { algorithms: ['ES256'] },
    ));
  } catch (error) {
    return { ok: false, refusal: error instanceof errors.JWSSignatureVerificationFailed ? 'signature' : 'malformed' };
  }
  let claims: unknown;
  try {
    claims = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    return { ok: false, refusal: 'malformed' };
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims))
    return { ok: false, refusal: 'malformed' };
  const { jti } = claims as { jti?: unknown };
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_CHALLENGE_LENGTH) {
    return { ok: false, refusal: 'malformed' };
  }
  return { ok: true, challenge: jti };
}
