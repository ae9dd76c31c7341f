import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';

/**
 * The browser's side of DBSC (W3C editor's draft of 2026-02-17), scripted: a P-256 key per
 * session (node:crypto standing in for the TPM), ES256 proofs as the spec's "DBSC Proof JWT
 * Syntax" shows them (`typ: dbsc+jwt`, the challenge as `jti`, the public JWK in the header at
 * registration only), and the structured headers read as a browser reads them.
 */
export class DbscDevice {
  readonly privateKey: KeyObject;
  readonly publicJwk: { kty: string; crv: string; x: string; y: string };

  constructor(curve: 'P-256' | 'P-384' = 'P-256') {
    const pair = generateKeyPairSync('ec', { namedCurve: curve });
    this.privateKey = pair.privateKey;
    const { kty, crv, x, y } = pair.publicKey.export({ format: 'jwk' }) as Record<string, string>;
    this.publicJwk = { kty, crv, x, y };
  }

  /** The private key as a JWK (what must never be sent). */
  privateJwk(): Record<string, unknown> {
    return this.privateKey.export({ format: 'jwk' }) as Record<string, unknown>;
  }

  /** The registration proof: the key travels in the header. */
  registrationProof(challenge: string, overrides: ProofOverrides = {}): string {
    return this.proof({ alg: 'ES256', typ: 'dbsc+jwt', jwk: this.publicJwk }, { jti: challenge }, overrides);
  }

  /** A refresh proof: no key in the header (the server has it). */
  refreshProof(challenge: string, overrides: ProofOverrides = {}): string {
    return this.proof({ alg: 'ES256', typ: 'dbsc+jwt' }, { jti: challenge }, overrides);
  }

  private proof(header: object, payload: object, overrides: ProofOverrides): string {
    const fullHeader = { ...header, ...overrides.header };
    // Chrome adds `aud` and `iat` (the spec's example JWT has `iat` as a string); the server must not mind.
    const fullPayload = {
      aud: 'https://localhost/dbsc',
      iat: String(Math.floor(Date.now() / 1000)),
      ...payload,
      ...overrides.payload,
    };
    const signingInput = `${base64url(JSON.stringify(fullHeader))}.${base64url(JSON.stringify(fullPayload))}`;
    const signature = sign('sha256', Buffer.from(signingInput), {
      key: overrides.signWith ?? this.privateKey,
      dsaEncoding: 'ieee-p1363',
    });
    return `${signingInput}.${signature.toString('base64url')}`;
  }
}

export interface ProofOverrides {
  header?: Record<string, unknown>;
  payload?: Record<string, unknown>;
  signWith?: KeyObject;
}

export function base64url(text: string | Buffer): string {
  return Buffer.from(text).toString('base64url');
}

/** `Secure-Session-Registration: (ES256);path="...";challenge="..."` read as the spec's algorithm does. */
export function readRegistration(header: unknown): { algorithms: string[]; path: string; challenge: string } {
  const match = /^\(([A-Za-z0-9 ]+)\);path="([^"]*)";challenge="([^"]*)"$/.exec(String(header));
  if (!match) throw new Error(`not a registration offer: ${String(header)}`);
  return { algorithms: match[1].split(' '), path: match[2], challenge: match[3] };
}

/** `Secure-Session-Challenge: "<challenge>";id="<session id>"`. */
export function readChallenge(header: unknown): { challenge: string; id: string } {
  const match = /^"([^"]*)";id="([^"]*)"$/.exec(String(header));
  if (!match) throw new Error(`not a challenge: ${String(header)}`);
  return { challenge: match[1], id: match[2] };
}

/** A header value as the browser sends an sf-string. */
export function sfString(text: string): string {
  return `"${text}"`;
}
