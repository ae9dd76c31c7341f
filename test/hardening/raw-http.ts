import net from 'node:net';

/** A response as read off the wire. */
export interface RawResponse {
  status: number;
  /** Lower-cased header names; repeated headers (Set-Cookie) keep every value. */
  headers: Map<string, string[]>;
  body: string;
}

/**
 * A keep-alive HTTP/1.1 client over a bare TCP socket, one request at a time. It
 * writes header bytes exactly as given (NUL, control characters, non-UTF-8 bytes,
 * several Cookie lines), which Node's http client and fetch refuse to send: what a
 * hostile client, not a browser, puts on the wire.
 */
export class RawHttpClient {
  private socket: net.Socket | null = null;
  private buffered = Buffer.alloc(0);
  private waiting: (() => void) | null = null;
  private closed = false;

  constructor(private readonly port: number) {}

  /** `GET path` with `headerLines` (each `Name: value`, raw bytes, no CR/LF of their own). */
  async get(path: string, headerLines: Buffer[]): Promise<RawResponse> {
    const socket = await this.connection();
    const head = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`, 'latin1');
    const lines = headerLines.flatMap((line) => [line, CRLF]);
    socket.write(Buffer.concat([head, ...lines, CRLF]));
    // A server that never answers is a failure to report, not a test that hangs.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.close();
        reject(new Error(`no response within ${RESPONSE_TIMEOUT_MS} ms`));
      }, RESPONSE_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.readResponse(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.socket?.destroy();
    this.socket = null;
  }

  private async connection(): Promise<net.Socket> {
    if (this.socket && !this.closed) return this.socket;
    this.socket?.destroy();
    this.buffered = Buffer.alloc(0);
    this.closed = false;
    const socket = net.connect(this.port, '127.0.0.1');
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      this.wake();
    });
    const onGone = () => {
      this.closed = true;
      this.wake();
    };
    socket.on('close', onGone);
    socket.on('error', onGone);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    this.socket = socket;
    return socket;
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.();
  }

  private async more(): Promise<void> {
    if (this.closed) throw new Error(`connection closed with ${this.buffered.length} bytes unread`);
    await new Promise<void>((resolve) => (this.waiting = resolve));
  }

  private async readResponse(): Promise<RawResponse> {
    let headEnd: number;
    while ((headEnd = this.buffered.indexOf('\r\n\r\n')) === -1) await this.more();
    const [statusLine, ...lines] = this.buffered.subarray(0, headEnd).toString('latin1').split('\r\n');
    const status = Number(statusLine.split(' ')[1]);
    const headers = new Map<string, string[]>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim().toLowerCase();
      headers.set(name, [...(headers.get(name) ?? []), line.slice(colon + 1).trim()]);
    }
    const length = Number(headers.get('content-length')?.[0] ?? 0);
    const bodyStart = headEnd + 4;
    while (this.buffered.length < bodyStart + length) await this.more();
    const body = this.buffered.subarray(bodyStart, bodyStart + length).toString('utf8');
    this.buffered = this.buffered.subarray(bodyStart + length);
    if (headers.get('connection')?.[0]?.toLowerCase() === 'close') this.close();
    return { status, headers, body };
  }
}

const CRLF = Buffer.from('\r\n', 'latin1');
const RESPONSE_TIMEOUT_MS = 10_000;
