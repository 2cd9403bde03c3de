import net from 'node:net';

/**
 * A loopback TCP proxy in front of a Postgres server that can cut a client's connection right
 * after forwarding its COMMIT (simple-protocol `Q` message), as a network failure would while the
 * server commits, and can refuse new connections for a while.
 */
export interface CuttingProxy {
  port: number;
  /** Cut the next connection that sends COMMIT, once. */
  armCommitCut(): void;
  /** Whether new connections are accepted (off: they are closed at once). */
  accepting: boolean;
  commitsCut: number;
  close(): Promise<void>;
}

const COMMIT = Buffer.from('commit\0');

export async function startCuttingProxy(targetPort: number): Promise<CuttingProxy> {
  let armed = false;
  const sockets = new Set<net.Socket>();
  const proxy: CuttingProxy = {
    port: 0,
    accepting: true,
    commitsCut: 0,
    armCommitCut: () => {
      armed = true;
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = net.createServer((client) => {
    if (!proxy.accepting) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.on('data', (chunk) => {
      upstream.write(chunk);
      const at = chunk.indexOf(COMMIT);
      if (armed && at >= 5 && chunk[at - 5] === 0x51) {
        armed = false;
        proxy.commitsCut++;
        // The server gets the COMMIT; the client never hears back.
        client.destroy();
        setTimeout(() => upstream.end(), 200);
      }
    });
    upstream.on('data', (chunk) => {
      if (!client.destroyed) client.write(chunk);
    });
    client.on('close', () => setTimeout(() => upstream.end(), 200));
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  proxy.port = (server.address() as net.AddressInfo).port;
  return proxy;
}
