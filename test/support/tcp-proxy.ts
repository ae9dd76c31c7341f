import net from 'node:net';

/**
 * A TCP forwarder on 127.0.0.1 in front of a server (PostgreSQL), that a test can
 * cut and restore: the deterministic way to take the database away from a running
 * app and give it back, without stopping the server other suites use.
 *
 * ```ts
 * const proxy = await startTcpProxy(POSTGRES_URL);
 * // point the app at proxy.urlFor(db.url)
 * proxy.cut();      // every connection dies now, new ones are dropped at once
 * proxy.restore();  // connections work again
 * await proxy.close();
 * ```
 */
export interface TcpProxy {
  /** The port the proxy listens on (127.0.0.1). */
  readonly port: number;
  /** `url` with its host and port replaced by the proxy's (keeps user, database, query). */
  urlFor(url: string): string;
  /**
   * Takes the server away. `'refuse'` (default): open connections are destroyed and
   * new ones closed on accept, so clients fail fast ("Connection terminated").
   * `'hang'`: connections stay open but nothing is forwarded either way (a network
   * partition), so clients wait for their own timeouts.
   */
  cut(mode?: 'refuse' | 'hang'): void;
  /** Forwards again. Connections held by `'hang'` are destroyed, so clients reconnect cleanly. */
  restore(): void;
  /** 'open', 'refuse' or 'hang'. */
  readonly state: 'open' | 'refuse' | 'hang';
  /** Client connections currently open through the proxy. */
  readonly openConnections: number;
  /** Client connections accepted since start (including ones refused or hung). */
  readonly acceptedConnections: number;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

/** Starts a proxy to `target`: a URL (`postgres://host:port/...`) or `{ host, port }`. */
export async function startTcpProxy(target: string | { host: string; port: number }): Promise<TcpProxy> {
  const { host, port: targetPort } =
    typeof target === 'string'
      ? { host: new URL(target).hostname, port: Number(new URL(target).port || 5432) }
      : target;
  let state: TcpProxy['state'] = 'open';
  let accepted = 0;
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();

  const destroyAll = () => {
    for (const { client, upstream } of pairs) {
      client.destroy();
      upstream.destroy();
    }
    pairs.clear();
  };

  const server = net.createServer((client) => {
    accepted++;
    client.on('error', () => undefined);
    if (state === 'refuse') {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, host);
    upstream.on('error', () => undefined);
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('close', end);
    upstream.on('close', end);
    forward(client, upstream, () => state);
    forward(upstream, client, () => state);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;

  return {
    port,
    get state() {
      return state;
    },
    get openConnections() {
      return pairs.size;
    },
    get acceptedConnections() {
      return accepted;
    },
    urlFor(url: string) {
      const proxied = new URL(url);
      proxied.hostname = '127.0.0.1';
      proxied.port = String(port);
      return proxied.toString();
    },
    cut(mode = 'refuse') {
      state = mode;
      if (mode === 'refuse') destroyAll();
    },
    restore() {
      if (state === 'hang') destroyAll();
      state = 'open';
    },
    async close() {
      state = 'refuse';
      destroyAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Copies `from` to `to` while the proxy is open (dropping bytes while it hangs), honouring backpressure. */
function forward(from: net.Socket, to: net.Socket, state: () => TcpProxy['state']): void {
  from.on('data', (chunk) => {
    if (state() !== 'open' || to.destroyed) return;
    if (!to.write(chunk)) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  });
}
