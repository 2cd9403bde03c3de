import {
  EndpointType,
  type AnnotationCreateValueRequest,
  type AnnotationData,
  type Branch,
  type BranchCreateRequest,
  type BranchResponse,
  type ConnectionURIsOptionalResponse,
  type DatabasesResponse,
  type Endpoint,
  type EndpointsResponse,
  type OperationsResponse,
  type RolesResponse,
  type Snapshot,
} from '@neondatabase/api-client';
import { type PointInTime } from '../../../src/time/index.js';
import { Backend } from './backend.js';
import { type History } from './history.js';
import type { LocalInstances } from './instances.js';
import { EndpointProxy, type HostPort } from './pg-proxy.js';

/** Faults that let the request succeed but change what its operations do. */
export type OperationFault = { failOperation: true; error?: string } | { stallOperation: true };

export interface StateConfig {
  projectId: string;
  historyRetentionSeconds: number;
  operationMs: number;
  pgVersion: number;
  productionUrl: string;
  productionAddress: HostPort;
  role: string;
  database: string;
  instances: LocalInstances;
}

export interface BranchRecord {
  branch: Branch;
  annotation: AnnotationData | undefined;
  backend: Backend;
  history: History;
  databaseId: number;
  /** The point on production its data was made from (absent for production and foreign branches). */
  origin?: PointInTime;
  /**
   * Never had a read-write compute since its data was made, so it cannot hold writes of its own:
   * its head is still `origin`, and a child at its head can be replayed from production's archive.
   */
  sealed: boolean;
  /** No compute ever started: nothing local was restored yet (a branch made with `endpoints: []`). */
  dormant: boolean;
  /** For a branch made by restoreSnapshot: the branch finalize_restore replaces. */
  restoreTargetId?: string;
}

export interface SnapshotRecord {
  snapshot: Snapshot;
  origin: PointInTime;
  history: History;
}

/** How the snapshot API answers: like an account that has it, or one that does not. */
export type SnapshotApiMode = 'available' | 'not-found' | 'forbidden';

export interface EndpointRecord {
  endpoint: Endpoint;
  proxy: EndpointProxy;
}

export type CreateBranchBody = BranchCreateRequest & AnnotationCreateValueRequest;
export type CreateBranchResult = BranchResponse & EndpointsResponse & OperationsResponse & RolesResponse & DatabasesResponse & ConnectionURIsOptionalResponse;

export const BRANCH_ANNOTATION = 'console/branch';

export function endpointsHaveReadWrite(endpoints: EndpointRecord[]): boolean {
  return endpoints.some((e) => e.endpoint.type === EndpointType.ReadWrite);
}
