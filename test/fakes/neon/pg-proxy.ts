import net from 'node:net';

/**
 * A Neon compute endpoint as a loopback TCP proxy. Neon's connection URIs name the endpoint, not
 * the machine behind it, so a URI survives a branch restore; the fake gets the same property by
 * giving each endpoint its own port and deciding per connection where to send it. It reads the
 * client's first packets itself (SSL/GSSENC negotiation, cancel requests, the StartupMessage)
 * because Neon's Time Travel is chosen there: `options=neon_timestamp:<ISO>` or `neon_lsn:<X/Y>`.
 */

export interface HostPort {
  host: string;
  port: number;
}

export type TimeTravelTarget = { kind: 'timestamp'; value: string } | { kind: 'lsn'; value: string };

export interface ProxyRoutes {
  /** Where ordinary sessions go; may wait while the compute "starts" (a local restore runs). */
  backend(): Promise<HostPort>;
  /** A read-only instance at that point; rejects with the reason the client should see. */
  timeTravel(target: TimeTravelTarget): Promise<HostPort>;
  /** Read-only endpoints turn every session read-only, as a Neon read replica refuses writes. */
  readOnly: boolean;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
/** Startup packets are small; a huge length means garbage, not a client. */
const MAX_STARTUP_LENGTH = 10_000;
const READ_ONLY_OPTION = '-c default_transaction_read_only=on';

export class EndpointProxy {
  private readonly sockets = new Set<net.Socket>();
  /** BackendKeyData seen on this endpoint → the instance that issued it, so cancels reach it. */
  private readonly cancelTargets = new Map<string, HostPort>();
  private closed = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly routes: ProxyRoutes,
  ) {
    server.on('connection', (socket) => void this.handle(socket));
  }

  static async start(routes: ProxyRoutes): Promise<EndpointProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('endpoint proxy has no TCP address');
    return new EndpointProxy(server, address.port, routes);
  }

  /** Interrupts every open session (Neon drops connections when a branch is restored). */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.dropConnections();
    await stopped;
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => this.sockets.delete(socket));
  }

  private async handle(client: net.Socket): Promise<void> {
    this.track(client);
    if (this.closed) return void client.destroy();
    const reader = new PacketReader(client);
    try {
      for (;;) {
        const packet = await reader.next();
        const code = packet.readInt32BE(4);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          // No TLS on loopback: 'N' tells the client to go on in plain text (or give up, if it requires TLS).
          client.write('N');
          continue;
        }
        if (code === CANCEL_REQUEST) return this.forwardCancel(packet, client);
        if (code >> 16 !== 3) return fail(client, `unsupported frontend protocol ${code >> 16}.${code & 0xffff}`, '08P01');
        await this.route(client, reader, packet);
        return;
      }
    } catch (err) {
      fail(client, (err as Error).message);
    }
  }

  private async route(client: net.Socket, reader: PacketReader, startup: Buffer): Promise<void> {
    const params = parseStartup(startup);
    const options = params.get('options');
    const parsed = options === undefined ? undefined : parseNeonOptions(options);
    let target: HostPort;
    let outgoing = startup;
    if (parsed?.timeTravel) {
      target = await this.routes.timeTravel(parsed.timeTravel);
      outgoing = buildStartup(startup.readInt32BE(4), withOptions(params, [...parsed.rest, READ_ONLY_OPTION]));
    } else {
      target = await this.routes.backend();
      const rest = parsed?.rest ?? [];
      if (this.routes.readOnly) outgoing = buildStartup(startup.readInt32BE(4), withOptions(params, [...rest, READ_ONLY_OPTION]));
      else if (parsed?.stripped) outgoing = buildStartup(startup.readInt32BE(4), withOptions(params, rest));
    }
    if (client.destroyed) return;
    const upstream = await connectTo(target);
    this.track(upstream);
    if (client.destroyed) return void upstream.destroy();
    upstream.write(outgoing);
    const pending = reader.release();
    if (pending.length) upstream.write(pending);
    // Watch the server's first messages for BackendKeyData; after ReadyForQuery only bytes flow.
    const scanner = new MessageScanner((type, body) => {
      if (type === 'K') this.cancelTargets.set(body.toString('hex'), target);
      return type !== 'Z' && type !== 'E';
    });
    const scan = (chunk: Buffer) => {
      if (!scanner.push(chunk)) upstream.off('data', scan);
    };
    upstream.on('data', scan);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  private forwardCancel(packet: Buffer, client: net.Socket): void {
    client.destroy();
    const target = this.cancelTargets.get(packet.subarray(8).toString('hex'));
    if (!target) return;
    const upstream = net.connect(target.port, target.host, () => upstream.end(packet));
    upstream.on('error', () => undefined);
  }
}

function connectTo(target: HostPort): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(target.port, target.host);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', (err) => reject(new Error(`compute at ${target.host}:${target.port} is unreachable: ${err.message}`)));
  });
}

/** Sends a Postgres ErrorResponse (severity FATAL) and closes: what a client shows as the failure. */
function fail(client: net.Socket, message: string, sqlState = 'XX000'): void {
  if (client.destroyed) return;
  client.end(errorResponse(message, sqlState));
}

export function errorResponse(message: string, sqlState = 'XX000'): Buffer {
  const field = (type: string, value: string) => Buffer.concat([Buffer.from(type), Buffer.from(value), Buffer.from([0])]);
  const body = Buffer.concat([field('S', 'FATAL'), field('V', 'FATAL'), field('C', sqlState), field('M', message), Buffer.from([0])]);
  const header = Buffer.alloc(5);
  header.write('E', 0);
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

/** Hands out the length-prefixed packets of the startup phase, however TCP splits them. */
class PacketReader {
  private buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private ended: Error | undefined;
  private readonly onData = (chunk: Buffer) => {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    this.waiter?.();
  };
  private readonly onEnd = () => {
    this.ended = new Error('client closed the connection during startup');
    this.waiter?.();
  };

  constructor(private readonly socket: net.Socket) {
    socket.on('data', this.onData);
    socket.on('close', this.onEnd);
  }

  async next(): Promise<Buffer> {
    for (;;) {
      if (this.buffer.length >= 4) {
        const length = this.buffer.readInt32BE(0);
        if (length < 8 || length > MAX_STARTUP_LENGTH) throw new Error(`invalid startup packet length ${length}`);
        if (this.buffer.length >= length) {
          const packet = this.buffer.subarray(0, length);
          this.buffer = this.buffer.subarray(length);
          return packet;
        }
      }
      if (this.ended) throw this.ended;
      await new Promise<void>((resolve) => (this.waiter = resolve));
      this.waiter = undefined;
    }
  }

  /** Stops reading; returns what the client already sent past the startup packet (pipelined auth). */
  release(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onEnd);
    return this.buffer;
  }
}

/** Splits a backend's byte stream into messages (type byte + Int32 length) until told to stop. */
class MessageScanner {
  private buffer = Buffer.alloc(0);
  constructor(private readonly onMessage: (type: string, body: Buffer) => boolean) {}

  /** False once the callback asked to stop. */
  push(chunk: Buffer): boolean {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= 5) {
      const length = this.buffer.readInt32BE(1);
      if (this.buffer.length < length + 1) break;
      const type = String.fromCharCode(this.buffer[0]!);
      const body = this.buffer.subarray(5, length + 1);
      this.buffer = this.buffer.subarray(length + 1);
      if (!this.onMessage(type, body)) return false;
    }
    return true;
  }
}

export function parseStartup(packet: Buffer): Map<string, string> {
  const params = new Map<string, string>();
  const parts = packet.subarray(8).toString('utf8').split('\0');
  for (let i = 0; i + 1 < parts.length && parts[i] !== ''; i += 2) params.set(parts[i]!, parts[i + 1]!);
  return params;
}

export function buildStartup(protocol: number, params: Map<string, string>): Buffer {
  const pairs = [...params].flatMap(([k, v]) => [Buffer.from(k), Buffer.from([0]), Buffer.from(v), Buffer.from([0])]);
  const body = Buffer.concat([...pairs, Buffer.from([0])]);
  const header = Buffer.alloc(8);
  header.writeInt32BE(body.length + 8, 0);
  header.writeInt32BE(protocol, 4);
  return Buffer.concat([header, body]);
}

function withOptions(params: Map<string, string>, tokens: string[]): Map<string, string> {
  const next = new Map(params);
  if (tokens.length) next.set('options', tokens.join(' '));
  else next.delete('options');
  return next;
}

/**
 * Splits the `options` startup parameter the way Postgres does (whitespace separates, a backslash
 * escapes the next character). Tokens keep their escapes so the rest can be passed on verbatim.
 */
export function splitOptions(options: string): string[] {
  const tokens: string[] = [];
  let current = '';
  for (let i = 0; i < options.length; i++) {
    const ch = options[i]!;
    if (ch === '\\' && i + 1 < options.length) {
      current += ch + options[++i];
    } else if (/\s/.test(ch)) {
      if (current) tokens.push(current);
      current = '';
    } else current += ch;
  }
  if (current) tokens.push(current);
  return tokens;
}

export interface NeonOptions {
  timeTravel?: TimeTravelTarget;
  /** The tokens Postgres should still see. */
  rest: string[];
  /** True when Neon-only tokens were removed (the startup message must be rewritten). */
  stripped: boolean;
}

/**
 * Finds Neon's own tokens in `options`: `neon_timestamp:` / `neon_lsn:` (Time Travel) and
 * `endpoint=` / `project=` (endpoint routing for clients without SNI). Postgres would reject them
 * as unknown command-line arguments, so they never reach it.
 */
export function parseNeonOptions(options: string): NeonOptions {
  const result: NeonOptions = { rest: [], stripped: false };
  for (const raw of splitOptions(options)) {
    const token = decodeToken(raw.replace(/\\(.)/g, '$1'));
    const time = /^neon_timestamp:(.+)$/.exec(token);
    const lsn = /^neon_lsn:(.+)$/.exec(token);
    if (time) result.timeTravel = { kind: 'timestamp', value: time[1]! };
    else if (lsn) result.timeTravel = { kind: 'lsn', value: lsn[1]! };
    else if (!/^(endpoint|project)=/.test(token)) {
      result.rest.push(raw);
      continue;
    }
    result.stripped = true;
  }
  return result;
}

/** A URL-encoded token (`neon_timestamp%3A2024-…`) means the same as the decoded one. */
function decodeToken(token: string): string {
  if (!token.includes('%')) return token;
  try {
    return decodeURIComponent(token);
  } catch {
    return token;
  }
}
