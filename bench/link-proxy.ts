import net from 'node:net';

/**
 * A TCP proxy on loopback that behaves like a network link: every chunk waits half the round
 * trip time in each direction, and each direction is limited to `mbit` megabits per second
 * (serialization delay: a chunk leaves when the link has finished sending the one before it).
 * Put between pitr and each database, it shows what a real network between the user and Neon
 * costs. A direction that has more than 4 MB in flight pauses its source (TCP-like backpressure).
 */
export interface Link {
  rttMs: number;
  mbit: number;
}

export interface LinkProxy {
  port: number;
  /** Bytes carried, per direction. */
  bytes: { up: number; down: number };
  close(): Promise<void>;
}

export function parseLink(text: string): Link {
  const m = /^\s*(\d+(?:\.\d+)?)\s*ms\s*,\s*(\d+(?:\.\d+)?)\s*$/.exec(text);
  if (!m) throw new Error(`--link must look like 20ms,100 (round trip, megabits per second), not "${text}"`);
  return { rttMs: Number(m[1]), mbit: Number(m[2]) };
}

const HIGH_WATER = 4 * 1024 * 1024;

function throttle(from: net.Socket, to: net.Socket, link: Link, count: (n: number) => void): void {
  const bytesPerMs = (link.mbit * 1e6) / 8 / 1000;
  // One FIFO per direction and one timer: separate timers per chunk could fire out of order.
  const queue: { due: number; chunk: Buffer }[] = [];
  let linkFreeAt = 0;
  let inFlight = 0;
  let timer: NodeJS.Timeout | null = null;
  let ended = false;
  const pump = () => {
    timer = null;
    const now = performance.now();
    while (queue.length && queue[0]!.due <= now) {
      const { chunk } = queue.shift()!;
      inFlight -= chunk.length;
      if (!to.destroyed) to.write(chunk);
    }
    if (inFlight <= HIGH_WATER / 2 && from.isPaused()) from.resume();
    if (queue.length) timer = setTimeout(pump, Math.max(0, queue[0]!.due - now));
    else if (ended) to.end();
  };
  from.on('data', (chunk: Buffer) => {
    const now = performance.now();
    linkFreeAt = Math.max(now, linkFreeAt) + chunk.length / bytesPerMs;
    queue.push({ due: linkFreeAt + link.rttMs / 2, chunk });
    inFlight += chunk.length;
    count(chunk.length);
    if (inFlight > HIGH_WATER) from.pause();
    if (!timer) timer = setTimeout(pump, Math.max(0, queue[0]!.due - now));
  });
  from.on('end', () => {
    ended = true;
    if (!timer && !queue.length) to.end();
  });
  from.on('error', () => to.destroy());
  to.on('close', () => {
    if (timer) clearTimeout(timer);
  });
}

export async function startLinkProxy(targetPort: number, link: Link, targetHost = '127.0.0.1'): Promise<LinkProxy> {
  const sockets = new Set<net.Socket>();
  const bytes = { up: 0, down: 0 };
  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const upstream = net.connect(targetPort, targetHost);
    upstream.setNoDelay(true);
    sockets.add(client).add(upstream);
    throttle(client, upstream, link, (n) => (bytes.up += n));
    throttle(upstream, client, link, (n) => (bytes.down += n));
    const gone = () => {
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', gone);
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    bytes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Run as a script (`tsx bench/link-proxy.ts <targetPort> <rtt>ms,<mbit>`): a proxy in its own
 * process, so its buffers and CPU never count in the process that measures pitr. Prints its port.
 */
if (process.argv[1] && (await import('node:url')).fileURLToPath(import.meta.url) === (await import('node:path')).resolve(process.argv[1])) {
  const proxy = await startLinkProxy(Number(process.argv[2]), parseLink(process.argv[3]!));
  console.log(JSON.stringify({ port: proxy.port }));
  process.on('SIGTERM', () => void proxy.close().finally(() => process.exit(0)));
}
