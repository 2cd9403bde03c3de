import type {
  AnnotationResponse,
  AnnotationsMapResponse,
  BranchesCountResponse,
  BranchesResponse,
  BranchOperations,
  BranchResponse,
  ConnectionURIResponse,
  CursorPaginationResponse,
  DatabasesResponse,
  EndpointOperations,
  EndpointsOptionalResponse,
  EndpointsResponse,
  OperationResponse,
  OperationsResponse,
  PaginationResponse,
  ProjectResponse,
  RolePasswordResponse,
  RolesResponse,
  Snapshot,
} from '@neondatabase/api-client';
import { http, HttpResponse, type HttpHandler, type PathParams } from 'msw';
import { generalError } from './faults.js';
import type { CreateBranchResult, NeonState, OperationFault } from './state.js';
import { ApiError } from './validate.js';

/**
 * Neon API v2 routes as msw handlers. Every route needs `Authorization: Bearer <apiKey>` and a
 * known project; an ApiError thrown by the state becomes a GeneralError with its status. Response
 * bodies are typed with the api-client's own types, so a wrong field name fails to compile.
 */
export interface HandlerContext {
  apiKey: string;
  state: NeonState;
  /** The failOperation/stallOperation fault injected for this request, if any. */
  operationFault(request: Request): OperationFault | undefined;
}

interface RouteArgs {
  request: Request;
  params: Record<string, string>;
  query: URLSearchParams;
}

export function neonHandlers(apiHost: string, ctx: HandlerContext): HttpHandler[] {
  const { state } = ctx;
  const route =
    (resolve: (args: RouteArgs) => Response | Promise<Response>) =>
    async ({ request, params }: { request: Request; params: PathParams }) => {
      const flat = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, String(v)]));
      try {
        state.requireProject(flat.projectId!);
        // Operations are evaluated lazily: let finished ones take effect before anything is read.
        state.refresh();
        return await resolve({ request, params: flat, query: new URL(request.url).searchParams });
      } catch (err) {
        if (err instanceof ApiError) return generalError(err.status, err.message);
        throw err;
      }
    };
  const p = (path: string) => `${apiHost}/projects/:projectId${path}`;
  const json = <T extends object>(body: T, status = 200) => HttpResponse.json<T>(body, { status });

  return [
    // First, for every path (known or not): no valid API key, no answer but 401.
    http.all(`${apiHost}/*`, ({ request }) =>
      request.headers.get('authorization') === `Bearer ${ctx.apiKey}` ? undefined : generalError(401, 'authentication failed'),
    ),
    http.get(
      p(''),
      route(() => json<ProjectResponse>({ project: { ...state.project } })),
    ),
    http.get(
      p('/branches'),
      route(({ query }) => json<BranchesResponse & AnnotationsMapResponse & CursorPaginationResponse>(state.listBranches(query))),
    ),
    http.post(
      p('/branches'),
      route(async ({ request }) => json<CreateBranchResult>(await state.createBranch(await readJson(request), ctx.operationFault(request)), 201)),
    ),
    // Before /branches/:branchId, which would otherwise take "count" for an id.
    http.get(
      p('/branches/count'),
      route(({ query }) => json<BranchesCountResponse>({ count: state.countBranches(query) })),
    ),
    http.get(
      p('/branches/:branchId'),
      route(({ params }) => json<BranchResponse & AnnotationResponse>(state.getBranch(params.branchId!))),
    ),
    http.patch(
      p('/branches/:branchId'),
      route(async ({ request, params }) => json<BranchOperations>(state.updateBranch(params.branchId!, await readJson(request)))),
    ),
    http.delete(
      p('/branches/:branchId'),
      route(({ request, params }) => json<BranchOperations>(state.deleteBranch(params.branchId!, ctx.operationFault(request)))),
    ),
    http.post(
      p('/branches/:branchId/restore'),
      route(async ({ request, params }) =>
        json<BranchOperations>(await state.restoreBranch(params.branchId!, await readJson(request), ctx.operationFault(request))),
      ),
    ),
    http.get(
      p('/branches/:branchId/endpoints'),
      route(({ params }) => json<EndpointsResponse>({ endpoints: state.branchEndpoints(params.branchId!) })),
    ),
    http.get(
      p('/branches/:branchId/databases'),
      route(({ params }) => json<DatabasesResponse>({ databases: state.databases(params.branchId!) })),
    ),
    http.get(
      p('/branches/:branchId/roles'),
      route(({ params }) => json<RolesResponse>({ roles: state.roles(params.branchId!) })),
    ),
    http.get(
      p('/branches/:branchId/roles/:roleName/reveal_password'),
      route(({ params }) => json<RolePasswordResponse>({ password: state.revealPassword(params.branchId!, params.roleName!) })),
    ),
    http.get(
      p('/endpoints'),
      route(() => json<EndpointsResponse>({ endpoints: state.allEndpoints() })),
    ),
    http.post(
      p('/endpoints'),
      route(async ({ request }) => json<EndpointOperations>(await state.createEndpoint(await readJson(request), ctx.operationFault(request)), 201)),
    ),
    http.get(
      p('/operations'),
      route(({ query }) => json<OperationsResponse & PaginationResponse>({ operations: state.listOperations(query) })),
    ),
    http.get(
      p('/operations/:operationId'),
      route(({ params }) => json<OperationResponse>({ operation: state.getOperation(params.operationId!) })),
    ),
    // Snapshots (Beta on Neon): behind state.snapshotApi, which can answer like an account without them.
    http.post(
      p('/branches/:branchId/snapshot'),
      route(async ({ request, params, query }) =>
        json<{ snapshot: Snapshot } & OperationsResponse>(await state.createSnapshot(params.branchId!, query, ctx.operationFault(request)), 201),
      ),
    ),
    http.get(
      p('/snapshots'),
      route(() => json<{ snapshots: Snapshot[] }>({ snapshots: state.listSnapshots() })),
    ),
    http.patch(
      p('/snapshots/:snapshotId'),
      route(async ({ request, params }) => json<{ snapshot: Snapshot }>({ snapshot: state.updateSnapshot(params.snapshotId!, await readJson(request)) })),
    ),
    http.delete(
      p('/snapshots/:snapshotId'),
      route(({ request, params }) => json<OperationsResponse>({ operations: state.deleteSnapshot(params.snapshotId!, ctx.operationFault(request)) })),
    ),
    http.post(
      p('/snapshots/:snapshotId/restore'),
      route(async ({ request, params, query }) =>
        json<BranchResponse & EndpointsOptionalResponse & OperationsResponse>(
          await state.restoreSnapshot(params.snapshotId!, query, await readJson(request), ctx.operationFault(request)),
          201,
        ),
      ),
    ),
    http.post(
      p('/branches/:branchId/finalize_restore'),
      route(async ({ request, params }) =>
        json<OperationsResponse>({ operations: state.finalizeRestore(params.branchId!, await readJson(request), ctx.operationFault(request)).operations }),
      ),
    ),
    http.get(
      p('/connection_uri'),
      route(({ query }) => json<ConnectionURIResponse>({ uri: state.connectionUri(query) })),
    ),
  ];
}

/** The JSON body (undefined when empty); malformed JSON is a 400, as on Neon. */
async function readJson<T>(request: Request): Promise<T> {
  const text = await request.text();
  if (!text.trim()) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(400, 'request body is not valid JSON');
  }
}
