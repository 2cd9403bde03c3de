import { join } from 'node:path';
import type { Branch, Endpoint, Operation, Snapshot } from '@neondatabase/api-client';
import { getResponse, type HttpHandler } from 'msw';
import pg from 'pg';
import { faultResponse, FaultBook, generalError, type Fault, type HttpMethod } from './faults.js';
import { neonHandlers } from './handlers.js';
import { serveFetch } from './http-server.js';
import { LocalInstances, type ProductionSettings } from './instances.js';
import { NeonState, type OperationFault, type SnapshotApiMode } from './state.js';

/**
 * An honest, stateful fake of Neon's HTTP API for integration tests, backed by real Postgres:
 * the default branch 'main' is a local cluster ("production") and a branch at a point in time is
 * a real local recovery instance made by pitr's own LocalProvider. The API is a loopback HTTP
 * server (msw handlers served for real, so the built CLI can use it as --api-host); each compute
 * endpoint is a loopback TCP proxy whose URI stays the same across a restore and which serves
 * Neon's Time Travel (`options=neon_timestamp:…`).
 */

export type ApiBranch = Branch;
export type ApiEndpoint = Endpoint;
export type ApiOperation = Operation;
export type ApiSnapshot = Snapshot;
export type { SnapshotApiMode } from './state.js';
export type { Fault } from './faults.js';

export interface FakeNeonOptions {
  apiKey: string;
  /** Default 'proud-fake-123456'. */
  projectId?: string;
  /** Default 86400. */
  historyRetentionSeconds?: number;
  /** The default branch 'main' is this local cluster; branches at a time are restored from its backups + WAL archive. */
  production: ProductionSettings;
  /** Minimum time each operation spends in scheduling→running before it ends (default 300). */
  operationMs?: number;
  /** Delay added to every HTTP response (default 0). */
  latencyMs?: number;
  /**
   * The snapshot API (Beta on Neon): 'available' (default), or answered like an account without
   * it: 'not-found' (404) or 'forbidden' (403, "not available on your plan").
   */
  snapshotApi?: SnapshotApiMode;
  /** Snapshots per project before create answers 422 (default 10, Neon's paid-plan limit). */
  snapshotLimit?: number;
}

export interface RecordedRequest {
  method: string;
  /** Relative to the API base, like inject()'s patterns: '/projects/p/branches'. */
  path: string;
  /** The query string without '?' ('' when none). */
  query: string;
  /** The response status; 0 for a request a `hang` fault never answered. */
  status: number;
  authorization: string | null;
  /** Parsed JSON, else the raw text; null when empty. */
  body: unknown;
}

export interface FakeNeon {
  /** e.g. 'http://127.0.0.1:41234/api/v2': what the CLI gets as --api-host / NEON_API_HOST. */
  apiHost: string;
  projectId: string;
  defaultBranchId: string;
  requests: RecordedRequest[];
  /** Faults for the next matching requests, consumed in order. pathPattern uses msw syntax, e.g. '/projects/:projectId/branches'. */
  inject(method: HttpMethod, pathPattern: string, faults: Fault[]): void;
  /** Current state, for assertions: annotations by branch id; branchesWithInstance = branches with a local Postgres (a compute ever started). */
  state(): {
    branches: ApiBranch[];
    endpoints: ApiEndpoint[];
    operations: ApiOperation[];
    snapshots: ApiSnapshot[];
    annotations: Record<string, Record<string, string>>;
    branchesWithInstance: string[];
  };
  /** Switches the snapshot API on or off (off = answered like an account without it). */
  setSnapshotApi(mode: SnapshotApiMode): void;
  setSnapshotLimit(limit: number): void;
  /** Changes the project's history window (as updateProject would): older points are refused from then on. */
  setHistoryRetentionSeconds(seconds: number): void;
  /** Adds a branch pitr did not make (e.g. a developer's), optionally protected. */
  addForeignBranch(name: string, options?: { protected?: boolean }): ApiBranch;
  /** Stops the HTTP server and proxies, deletes every local instance it made. */
  close(): Promise<void>;
}

const API_PATH = '/api/v2';

export async function startFakeNeon(options: FakeNeonOptions): Promise<FakeNeon> {
  const projectId = options.projectId ?? 'proud-fake-123456';
  const production = new URL(options.production.url);
  const role = decodeURIComponent(production.username) || 'postgres';
  const database = decodeURIComponent(production.pathname.slice(1)) || role;
  const instances = new LocalInstances(options.production, join(options.production.workDir, `fake-neon-${projectId}`));
  const state = await NeonState.create({
    projectId,
    historyRetentionSeconds: options.historyRetentionSeconds ?? 86_400,
    operationMs: options.operationMs ?? 300,
    pgVersion: await productionMajor(options.production.url),
    productionUrl: options.production.url,
    productionAddress: { host: production.hostname || '127.0.0.1', port: Number(production.port || 5432) },
    role,
    database,
    instances,
  });
  state.snapshotApi = options.snapshotApi ?? 'available';
  if (options.snapshotLimit !== undefined) state.snapshotLimit = options.snapshotLimit;

  const requests: RecordedRequest[] = [];
  const operationFaults = new WeakMap<Request, OperationFault>();
  let handlers: HttpHandler[] = [];
  let faults: FaultBook | undefined;
  const latencyMs = options.latencyMs ?? 0;

  const server = await serveFetch(async (request) => {
    const url = new URL(request.url);
    const path = url.pathname.startsWith(API_PATH) ? url.pathname.slice(API_PATH.length) || '/' : url.pathname;
    const body = await recordedBody(request.clone());
    const record = (status: number) =>
      requests.push({ method: request.method, path, query: url.search.replace(/^\?/, ''), status, authorization: request.headers.get('authorization'), body });

    // Faults come before normal handling: a 423 is answered without looking at the request at all.
    const fault = faults?.take(request.method, url);
    if (fault && 'hang' in fault) {
      record(0);
      return new Promise<undefined>(() => undefined);
    }
    let response: Response;
    if (fault && 'status' in fault) response = faultResponse(fault);
    else {
      if (fault) operationFaults.set(request, fault);
      try {
        response = (await getResponse(handlers, request)) ?? generalError(404, 'not found');
      } catch (err) {
        // A bug in the fake must reach the test as a failed request, and be recorded like one.
        response = generalError(500, `fake-neon: ${(err as Error).message}`);
      }
    }
    if (latencyMs > 0) await new Promise((r) => setTimeout(r, latencyMs));
    record(response.status);
    return response;
  });

  const apiHost = `${server.origin}${API_PATH}`;
  faults = new FaultBook(apiHost);
  handlers = neonHandlers(apiHost, { apiKey: options.apiKey, state, operationFault: (request) => operationFaults.get(request) });

  let closing: Promise<void> | undefined;
  return {
    apiHost,
    projectId,
    // A finalized snapshot restore makes another branch the default.
    get defaultBranchId() {
      return state.defaultBranchId;
    },
    requests,
    inject: (method, pattern, list) => faults!.inject(method, pattern, list),
    state: () => state.snapshot(),
    addForeignBranch: (name, opts) => state.addForeignBranch(name, opts),
    setSnapshotApi: (mode) => void (state.snapshotApi = mode),
    setSnapshotLimit: (limit) => void (state.snapshotLimit = limit),
    setHistoryRetentionSeconds: (seconds) => state.setHistoryRetentionSeconds(seconds),
    close() {
      closing ??= (async () => {
        await server.close();
        await state.close();
        await instances.close();
      })();
      return closing;
    },
  };
}

async function productionMajor(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ num: number }>(`select current_setting('server_version_num')::int as num`);
    return Math.floor(rows[0]!.num / 10_000);
  } finally {
    await client.end();
  }
}

async function recordedBody(request: Request): Promise<unknown> {
  const text = await request.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
