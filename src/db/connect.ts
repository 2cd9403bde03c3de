// src/db: connections, session settings, SQL quoting, introspection and the libpq environment.
// Low layer: must not import any folder above it (providers, diff, recover, export, cli); only
// src/errors.ts and src/redact.ts.
import { removeNavigatorHint } from './pg-load-hint.js';
import pg from 'pg';
import { PitrError } from '../errors.js';
import { redactUrl } from '../redact.js';
import { currentDriver, type DriverName } from './driver.js';

export { currentDriver, useDriver, type DriverName, type DriverSettings } from './driver.js';

removeNavigatorHint();

export interface ConnectOptions {
  timeoutMs?: number;
  applicationName?: string;
  /** Overrides the process-wide driver (local recovery instances are always reached over TCP). */
  driver?: DriverName;
}

async function wsClient(url: string, options: ConnectOptions): Promise<pg.Client> {
  const [{ Client, neonConfig }, { default: WebSocket }] = await Promise.all([import('@neondatabase/serverless'), import('ws')]);
  neonConfig.webSocketConstructor = WebSocket;
  // "password" pipelining breaks SCRAM against a plain Postgres behind a proxy; one round trip more is fine.
  neonConfig.pipelineConnect = false;
  const template = currentDriver().wsProxy;
  if (template) {
    neonConfig.useSecureWebSocket = template.startsWith('wss://');
    const bare = template.replace(/^wss?:\/\//, '');
    neonConfig.wsProxy = (host: string, port: number | string) => bare.replace('{host}', host).replace('{port}', String(port));
  }
  const client = new Client({ connectionString: url, connectionTimeoutMillis: options.timeoutMs ?? 5000 });
  return client as unknown as pg.Client;
}

/** Where a connection URL points, for messages: host:port/database, never credentials. */
export function describeTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname || ''}`;
  } catch {
    return redactUrl(url);
  }
}

export async function connect(url: string, options: ConnectOptions = {}): Promise<pg.Client> {
  const driver = options.driver ?? currentDriver().driver;
  const client =
    driver === 'ws'
      ? await wsClient(url, options)
      : new pg.Client({
          connectionString: url,
          connectionTimeoutMillis: options.timeoutMs ?? 5000,
          application_name: options.applicationName ?? 'pitr',
        });
  // A server that goes away mid-session must not crash the process with an unhandled 'error'.
  client.on('error', () => undefined);
  const timeoutMs = options.timeoutMs ?? 5000;
  let timer: NodeJS.Timeout | undefined;
  try {
    // The WebSocket driver does not always honour its own connect timeout (a relay that drops
    // the socket leaves it waiting), so the deadline is enforced here for both drivers.
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })), timeoutMs + 500);
      }),
    ]);
  } catch (err) {
    void client.end().catch(() => undefined);
    throw new PitrError('unreachable', `cannot connect to ${describeTarget(url)}: ${connectionErrorReason(err)}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
  try {
    await pinSearchPath(client);
  } catch (err) {
    void client.end().catch(() => undefined);
    throw new PitrError('unreachable', `cannot use ${describeTarget(url)}: ${connectionErrorReason(err)}`, { cause: err });
  }
  return client;
}

/**
 * pitr's SQL names user objects schema-qualified, so its sessions search only pg_catalog (and
 * pg_temp for its own temp tables, last): a function or operator a database user created in
 * public can never stand in for a built-in that pitr calls, whatever the role's search_path.
 */
export const PINNED_SEARCH_PATH = 'pg_catalog, pg_temp';

export async function pinSearchPath(client: Pick<pg.ClientBase, 'query'>): Promise<void> {
  await client.query(`select pg_catalog.set_config('search_path', '${PINNED_SEARCH_PATH}', false)`);
}

export function connectionErrorReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { message?: string };
  switch (e?.code) {
    case 'ECONNREFUSED':
      return 'connection refused (is the server running and listening there?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'ETIMEDOUT':
      return 'timed out';
    case '28P01':
      return 'password authentication failed';
    case '3D000':
      return e.message ?? 'database does not exist';
    default:
      return (e?.message ?? String(err)).split('\n')[0] ?? 'unknown error';
  }
}

/** Run fn with a connected client and always close it. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>, options: ConnectOptions = {}): Promise<T> {
  const client = await connect(url, options);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}
