import http from 'node:http';

/** One request of a load run; times are `performance.now()` milliseconds. */
export interface Sample {
  client: number;
  started: number;
  ended: number;
  status: number;
}

/** A GET with a Cookie header over a keep-alive agent; resolves to the status (0 when the connection failed). */
export function getStatus(agent: http.Agent, url: string, cookie: string): Promise<number> {
  return new Promise((resolve) => {
    const request = http.get(url, { agent, headers: { cookie } }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
      response.on('error', () => resolve(0));
    });
    request.on('error', () => resolve(0));
  });
}

/**
 * Steady load: `cookies.length` clients, each sending GET `url` with its own cookie
 * every `pauseMs`, until `stop()`. Every answer is kept, with when it was sent and received.
 */
export function startLoad(url: string, cookies: string[], pauseMs: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: cookies.length });
  const samples: Sample[] = [];
  const state = { running: true };
  const clients = cookies.map(async (cookie, client) => {
    while (state.running) {
      const started = performance.now();
      const status = await getStatus(agent, url, cookie);
      samples.push({ client, started, ended: performance.now(), status });
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  });
  return {
    samples,
    async stop(): Promise<Sample[]> {
      state.running = false;
      await Promise.all(clients);
      agent.destroy();
      return samples;
    },
  };
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Counts of each status in `samples`, e.g. `{ 200: 812, 503: 95 }`. */
export function statusCounts(samples: Sample[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const { status } of samples) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}
