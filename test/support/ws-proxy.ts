import { createServer, type AddressInfo } from 'node:net';
import { connect as tcpConnect } from 'node:net';
import { WebSocketServer } from 'ws';

/**
 * A WebSocket-to-TCP relay like Neon's wsproxy, on loopback: the client asks for
 * `/v1?address=host:port` and every binary message is relayed to that Postgres and back.
 * Only loopback targets are allowed.
 */
export interface WsProxy {
  /** For --ws-proxy / PITR_WS_PROXY. */
  template: string;
  connections: number;
  close(): Promise<void>;
}

export async function startWsProxy(): Promise<WsProxy> {
  const http = createServer();
  const wss = new WebSocketServer({ noServer: true });
  const state = { connections: 0 };
  // ws needs an HTTP server for upgrades; node:net's server is enough with a tiny HTTP shim.
  const { createServer: createHttpServer } = await import('node:http');
  const server = createHttpServer();
  server.on('upgrade', (req, socket, head) => {
    const address = new URL(req.url ?? '/', 'http://x').searchParams.get('address') ?? '';
    const [host, port] = address.split(':');
    if (host !== '127.0.0.1' && host !== 'localhost') {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      state.connections++;
      const tcp = tcpConnect(Number(port), '127.0.0.1');
      const pending: Buffer[] = [];
      let open = false;
      tcp.on('connect', () => {
        open = true;
        for (const chunk of pending) tcp.write(chunk);
      });
      ws.on('message', (data: Buffer) => (open ? tcp.write(data) : pending.push(data)));
      tcp.on('data', (chunk) => ws.send(chunk));
      const end = () => {
        ws.close();
        tcp.destroy();
      };
      ws.on('close', end);
      ws.on('error', end);
      tcp.on('close', end);
      tcp.on('error', end);
    });
  });
  http.close();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    template: `ws://127.0.0.1:${port}/v1?address={host}:{port}`,
    get connections() {
      return state.connections;
    },
    async close() {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
