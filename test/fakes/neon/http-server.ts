import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The CLI under test is a separate process, so msw cannot intercept its requests: the handlers
 * are served for real. Each Node request becomes a Fetch `Request`, `handle` answers it with a
 * Fetch `Response` (or undefined to never answer), and the response is written back.
 */
export interface LoopbackServer {
  origin: string;
  close(): Promise<void>;
}

export type FetchHandler = (request: Request) => Promise<Response | undefined>;

export async function serveFetch(handle: FetchHandler): Promise<LoopbackServer> {
  let origin = '';
  const server = http.createServer((req, res) => {
    void (async () => {
      try {
        const response = await handle(await toRequest(origin, req));
        if (response) await writeResponse(res, response);
      } catch (err) {
        if (res.headersSent) return void res.destroy();
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ code: '', message: `fake-neon crashed: ${(err as Error).message}` }));
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Hung requests and keep-alive sockets would otherwise hold close() forever.
        server.closeAllConnections();
      }),
  };
}

async function toRequest(origin: string, req: http.IncomingMessage): Promise<Request> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (Array.isArray(value)) for (const v of value) headers.append(name, v);
    else if (value !== undefined) headers.set(name, value);
  }
  const method = req.method ?? 'GET';
  return new Request(`${origin}${req.url ?? '/'}`, {
    method,
    headers,
    ...(method === 'GET' || method === 'HEAD' || body.length === 0 ? {} : { body }),
  });
}

async function writeResponse(res: http.ServerResponse, response: Response): Promise<void> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => (headers[name] = value));
  const body = Buffer.from(await response.arrayBuffer());
  res.writeHead(response.status, { ...headers, 'content-length': String(body.length) });
  res.end(body);
}
