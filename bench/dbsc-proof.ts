// What verifying one DBSC proof costs (`npm run bench:dbsc-proof`): a refresh proof against the
// stored key and a registration proof against the key its header carries, each `ROUNDS` times
// after a warm-up, on this process's one core. A refresh happens once per bound-cookie
// lifetime per session (10 minutes by default), so this is per-refresh CPU, not per request.
import { generateKeyPairSync, sign } from 'node:crypto';
import { verifyRefreshProof, verifyRegistrationProof } from '../src/device-binding/dbsc-proof.js';

const ROUNDS = 2000;
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const { x, y } = publicKey.export({ format: 'jwk' }) as { x: string; y: string };
const key = { kty: 'EC' as const, crv: 'P-256' as const, x, y };
const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

function proof(header: object): string {
  const input = `${part(header)}.${part({ jti: 'c'.repeat(43) })}`;
  const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

const refresh = proof({ alg: 'ES256', typ: 'dbsc+jwt' });
const registration = proof({ alg: 'ES256', typ: 'dbsc+jwt', jwk: key });
const cases: [string, () => Promise<{ ok: boolean }>][] = [
  ['refresh proof (stored key)', () => verifyRefreshProof(refresh, key)],
  ['registration proof (key in header)', () => verifyRegistrationProof(registration)],
];
for (const [name, verify] of cases) {
  for (let round = 0; round < 200; round++) await verify();
  const started = process.hrtime.bigint();
  for (let round = 0; round < ROUNDS; round++) {
    if (!(await verify()).ok) throw new Error(`${name} refused`);
  }
  const perProof = Number(process.hrtime.bigint() - started) / 1e6 / ROUNDS;
  process.stdout.write(`[dbsc-proof] ${name}: ${perProof.toFixed(3)} ms per proof (${ROUNDS} rounds)\n`);
}
