import { randomUUID } from 'node:crypto';
import { OperationStatus, type Operation, type OperationAction } from '@neondatabase/api-client';

/**
 * Neon answers a mutation at once and does the work in operations the client must poll. Here
 * one request's operations form a Job: they share one piece of real work (a local restore, a
 * deletion) and all end together, at max(created + operationMs, when the work settled). Status
 * is computed from the clock on every read, so a poll sees scheduling → running → finished (or
 * failed) without timers.
 */

/** What the operations of one request do, after faults were applied. */
export type JobWork =
  | { kind: 'work'; promise: Promise<unknown> }
  /** Injected failure: no real work; the operations fail with this error after operationMs. */
  | { kind: 'fail'; error: string }
  /** Injected stall: the operations stay running until the fake closes. */
  | { kind: 'stall' };

export interface JobEffects {
  /** Applied once, when the operations are seen finished. */
  onFinished?: () => void;
  /** Applied once, when the operations are seen failed. */
  onFailed?: (error: string) => void;
}

export class Job {
  readonly createdAt = Date.now();
  private settled: { at: number; error?: string } | undefined;
  private applied = false;

  constructor(
    work: JobWork,
    private readonly minimumMs: number,
    private readonly effects: JobEffects = {},
  ) {
    if (work.kind === 'fail') this.settled = { at: this.createdAt, error: work.error };
    if (work.kind === 'work') {
      work.promise.then(
        () => (this.settled = { at: Date.now() }),
        (err: unknown) => (this.settled = { at: Date.now(), error: err instanceof Error ? err.message : String(err) }),
      );
    }
  }

  /** A short first phase, so a fast poll can see the status Neon shows first. */
  private get schedulingMs(): number {
    return Math.min(100, this.minimumMs / 3);
  }

  /** When the operations end and how, once that time has come. */
  end(now = Date.now()): { at: number; error?: string } | undefined {
    if (!this.settled) return undefined;
    const at = Math.max(this.createdAt + this.minimumMs, this.settled.at);
    return now >= at ? { at, ...(this.settled.error !== undefined ? { error: this.settled.error } : {}) } : undefined;
  }

  get done(): boolean {
    return this.end() !== undefined;
  }

  /** Runs the effects of an ended job exactly once; true when it did. */
  applyEffects(now = Date.now()): boolean {
    if (this.applied) return false;
    const end = this.end(now);
    if (!end) return false;
    this.applied = true;
    if (end.error === undefined) this.effects.onFinished?.();
    else this.effects.onFailed?.(end.error);
    return true;
  }

  status(now = Date.now()): { status: OperationStatus; updatedAt: number; error?: string; durationMs: number } {
    const end = this.end(now);
    if (end) {
      return {
        status: end.error === undefined ? OperationStatus.Finished : OperationStatus.Failed,
        updatedAt: end.at,
        ...(end.error !== undefined ? { error: end.error } : {}),
        durationMs: end.at - this.createdAt,
      };
    }
    const started = this.createdAt + this.schedulingMs;
    if (now < started) return { status: OperationStatus.Scheduling, updatedAt: this.createdAt, durationMs: now - this.createdAt };
    return { status: OperationStatus.Running, updatedAt: started, durationMs: now - this.createdAt };
  }
}

export interface OperationRecord {
  id: string;
  projectId: string;
  action: OperationAction;
  branchId?: string;
  endpointId?: string;
  job: Job;
}

export function newOperation(job: Job, projectId: string, action: OperationAction, branchId?: string, endpointId?: string): OperationRecord {
  return { id: randomUUID(), projectId, action, job, ...(branchId ? { branchId } : {}), ...(endpointId ? { endpointId } : {}) };
}

export function renderOperation(op: OperationRecord, now = Date.now()): Operation {
  const s = op.job.status(now);
  return {
    id: op.id,
    project_id: op.projectId,
    ...(op.branchId ? { branch_id: op.branchId } : {}),
    ...(op.endpointId ? { endpoint_id: op.endpointId } : {}),
    action: op.action,
    status: s.status,
    ...(s.error !== undefined ? { error: s.error } : {}),
    failures_count: s.status === OperationStatus.Failed ? 1 : 0,
    created_at: iso(op.job.createdAt),
    updated_at: iso(s.updatedAt),
    total_duration_ms: s.durationMs,
  };
}

/** Neon prints seconds-precision UTC timestamps (`2022-11-15T20:02:00Z`). */
export function iso(ms: number | Date): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
