import autocannon from 'autocannon';

/** What one load run measured. Latencies in milliseconds. */
export interface LoadResult {
  /** 2xx responses per second over the run. */
  requestsPerSecond: number;
  /** 2xx responses in all. */
  responses: number;
  /** Exact percentiles of the 2xx response times (null when not recorded). */
  p50: number | null;
  p99: number | null;
  /** Non-2xx responses, connection errors and timeouts: any of them spoils the run. */
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Seconds the run lasted. */
  seconds: number;
}

export interface LoadOptions {
  port: number;
  connections: number;
  /** Seconds to run; ignored when `amount` is set. Use `during` to end early. */
  duration?: number;
  /** Total requests to send instead of a duration. */
  amount?: number;
  /** `Cookie` header values, used in turn across all connections. */
  cookies: string[];
  /** Keep every response time for exact percentiles (off for very long runs). */
  recordLatencies?: boolean;
  /** Started a second into the load (connections open, steady); the run ends when it settles, and only its span is measured. */
  during?: () => Promise<unknown>;
}

/**
 * Drives `GET /me` with autocannon in this process, rotating over `cookies`: no two
 * connections hammer the same row at once.
 * Percentiles are computed from every response time (autocannon's own histogram
 * rounds to whole milliseconds, too coarse for a p50 ratio).
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { cookies } = options;
  if (cookies.length === 0) throw new Error('runLoad needs at least one cookie');
  // Every connection cycles through all cookies, each starting at its own offset, so at
  // any moment the connections carry different sessions and every session is used in turn.
  // The requests are prebuilt per connection (autocannon's setupRequest would rebuild each
  // one, CPU the load generator takes from the app on a small machine).
  const requests = cookies.map((cookie) => ({ method: 'GET' as const, path: '/me', headers: { cookie } }));
  let connection = 0;
  const latencies: number[] = [];
  const record = options.recordLatencies ?? true;
  let finish!: (outcome: { error: unknown; result?: autocannon.Result }) => void;
  const finished = new Promise<{ error: unknown; result?: autocannon.Result }>((resolve) => (finish = resolve));
  const instance = autocannon(
    {
      url: `http://127.0.0.1:${options.port}`,
      connections: options.connections,
      ...(options.amount ? { amount: options.amount } : { duration: options.duration ?? 10 }),
      requests: [requests[0]],
      setupClient: (client) => {
        const offset = Math.floor((connection++ * requests.length) / options.connections) % requests.length;
        client.setRequests([...requests.slice(offset), ...requests.slice(0, offset)]);
      },
    },
    (error: unknown, result: autocannon.Result) => finish({ error, result }),
  );
  // With `during`, only responses that completed while it ran count: autocannon
  // notices stop() at its next one-second tick, so the run overshoots the event.
  const completedAt: number[] = [];
  let started = performance.now();
  let stoppedAt = Infinity;
  if (record) {
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) {
        latencies.push(responseTime);
        completedAt.push(performance.now());
      }
    });
  }
  const stop = () => {
    stoppedAt = performance.now();
    instance.stop();
  };
  const { during } = options;
  if (during) {
    instance.once('start', () => {
      setTimeout(() => {
        started = performance.now();
        during().then(stop, stop);
      }, 1000);
    });
  }
  const { error, result } = await finished;
  if (error || !result) throw error ?? new Error('autocannon gave no result');
  let counted = latencies.length;
  while (counted > 0 && completedAt[counted - 1] > stoppedAt) counted--;
  let first = 0;
  while (first < counted && completedAt[first] < started) first++;
  counted -= first;
  const sorted = Float64Array.from(latencies.slice(first, first + counted)).sort();
  const windowSeconds = stoppedAt === Infinity ? result.duration : (stoppedAt - started) / 1000;
  const responses = stoppedAt === Infinity || !record ? result['2xx'] : counted;
  return {
    requestsPerSecond: windowSeconds > 0 ? responses / windowSeconds : 0,
    responses,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    seconds: windowSeconds,
  };
}

/** Nearest-rank percentile of ascending `sorted`, or null when empty. */
function percentile(sorted: Float64Array, p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Why a run cannot be trusted, or null when it can. */
export function spoiled(result: LoadResult): string | null {
  if (result.responses === 0) return 'no 2xx response';
  if (result.non2xx || result.errors || result.timeouts) {
    return `${result.non2xx} non-2xx, ${result.errors} errors, ${result.timeouts} timeouts`;
  }
  return null;
}

/** The median of `figures` (NaN for none). */
export function median(figures: number[]): number {
  const sorted = [...figures].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
