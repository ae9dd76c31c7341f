/**
 * `npm run bench:cache-memory`: what `cache: true` holds per 100,000 cached sessions. Fills the
 * package's `SessionCache` (the class the guard uses) with lookups shaped as the guard's
 * (64-hex-digit stored id, a user id, created/expires), and reads RSS and heap after a full
 * collection before and after. Run with `--expose-gc` (the script does) so the readings show
 * what is held, not where the collector happened to be. `--entries N` to change the count.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { SessionCache } from '../src/cache/session-cache.js';
import { Session } from '../src/index.js';
import { resolveSessionOptions } from '../src/session.options.js';

const { values } = parseArgs({ options: { entries: { type: 'string' } } });
const entries = Number(values.entries ?? 100_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc (npm run bench:cache-memory does)');

const reading = () => {
  gc();
  gc();
  const { rss, heapUsed } = process.memoryUsage();
  return { rss, heapUsed };
};

const cache = new SessionCache(resolveSessionOptions({ cache: { maxEntries: entries } }));
const databaseNow = Date.now();
cache.observeClock(databaseNow, performance.now());
cache.subscribed();
const before = reading();
for (let i = 0; i < entries; i++) {
  const id = randomBytes(32).toString('hex');
  const session = Object.assign(new Session(), {
    id,
    user: `user-${i}`,
    created: new Date(databaseNow - 60_000),
    expires: new Date(databaseNow + 86_400_000),
  });
  cache.fill(id, { session, databaseNow: new Date(databaseNow) }, cache.ticket());
}
const after = reading();
if (cache.size !== entries) throw new Error(`expected ${entries} cached sessions, got ${cache.size}`);
const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const per100k = (bytes: number) => mb((bytes * 100_000) / entries);
console.log(
  `${entries.toLocaleString('en-US')} cached sessions: RSS +${mb(after.rss - before.rss)} MB, heap +${mb(after.heapUsed - before.heapUsed)} MB ` +
    `(per 100,000: RSS ${per100k(after.rss - before.rss)} MB, heap ${per100k(after.heapUsed - before.heapUsed)} MB; ` +
    `${Math.round((after.heapUsed - before.heapUsed) / entries)} heap bytes per session); node ${process.version}`,
);
