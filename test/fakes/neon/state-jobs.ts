import pg from 'pg';
import { compareLsn, type PointInTime } from '../../../src/time/index.js';
import { Backend } from './backend.js';
import { completeHistory, HistoryError, normalizeLsn, onProduction, type History } from './history.js';
import { Job, type JobEffects, type JobWork } from './operations.js';
import { ApiError, isRfc3339, outsideWindow } from './validate.js';
import { type BranchRecord, type OperationFault } from './state-types.js';
import { NeonStateRecords } from './state-records.js';

/** Background work: waking a branch, branch points in history, operations that run jobs. */
export class NeonStateJobs extends NeonStateRecords {
  // -------------------------------------------------------------- internals

  /** Starts the local instance of a branch that has had none yet (its first compute), at its origin. */
  protected wake(record: BranchRecord): Promise<unknown> {
    record.dormant = false;
    const origin = record.origin;
    if (!origin) {
      record.backend = Backend.none(`fake-neon holds no data for branch ${record.branch.name}`);
      return record.backend.whenReady();
    }
    const id = record.branch.id;
    record.backend = Backend.restoring(this.config.instances.restore(origin, `${id}-${Date.now()}`), (instanceId) => this.config.instances.remove(instanceId));
    // Routing facts are needed as soon as the instance answers, not when a poll notices.
    record.backend.whenReady().then(
      () => {
        const facts = record.backend.restored!;
        record.history = completeHistory(record.history, facts);
        if (!record.branch.parent_lsn && facts.replayLsn) record.branch.parent_lsn = normalizeLsn(facts.replayLsn);
      },
      () => undefined,
    );
    return record.backend.whenReady();
  }


  protected async branchPoint(
    parent: BranchRecord,
    timestamp: unknown,
    lsn: unknown,
    timestampField: string,
    lsnField: string,
    headLsn = false,
  ): Promise<{ point: PointInTime; history: History; parentTimestamp?: string; parentLsn?: string }> {
    if (timestamp !== undefined && lsn !== undefined) throw new ApiError(400, `${timestampField} and ${lsnField} cannot be specified at the same time`);
    const translate = (point: PointInTime) => {
      try {
        return onProduction(parent.history, point, parent.branch.name);
      } catch (err) {
        if (err instanceof HistoryError) throw new ApiError(501, err.message);
        throw err;
      }
    };
    if (timestamp !== undefined) {
      if (!isRfc3339(timestamp)) {
        throw new ApiError(400, `${timestampField} must be an ISO 8601 timestamp, e.g. 2024-02-26T12:00:00Z`);
      }
      const at = new Date(timestamp);
      const outside = outsideWindow(at, this.config.historyRetentionSeconds);
      if (outside) throw new ApiError(400, outside);
      return {
        point: translate({ kind: 'time', at, input: timestamp }),
        history: { kind: 'upto', until: at, untilLsn: null },
        parentTimestamp: at.toISOString(),
      };
    }
    if (lsn !== undefined) {
      const normalized = typeof lsn === 'string' ? normalizeLsn(lsn) : undefined;
      if (!normalized) throw new ApiError(400, `${lsnField} must be an LSN such as 0/1DE2850`);
      if (parent.history.kind === 'live') {
        const current = await this.productionLsn();
        if (current && compareLsn(normalized, current) > 0) {
          throw new ApiError(400, `${lsnField} ${normalized} is ahead of the branch's current LSN ${current}`);
        }
      }
      return { point: translate({ kind: 'lsn', lsn: normalized, input: lsn as string }), history: { kind: 'upto', until: null, untilLsn: normalized }, parentLsn: normalized };
    }
    if (parent.history.kind !== 'live') {
      // A copy that never had a read-write compute has no writes of its own: its head is still the
      // point on production it was made from (a snapshot branch, a restored snapshot), however old.
      if (parent.sealed && parent.origin) {
        return { point: parent.origin, history: parent.history, ...(parent.history.untilLsn ? { parentLsn: parent.history.untilLsn } : {}) };
      }
      throw new ApiError(501, `fake-neon cannot copy the head of ${parent.branch.name}: it is a local copy, and only production's history can be replayed; pass a timestamp or LSN`);
    }
    // Head = now, a millisecond ahead so every commit acknowledged before this request is in.
    const at = new Date(Date.now() + 1);
    await new Promise((r) => setTimeout(r, 2));
    const current = headLsn ? await this.productionLsn() : undefined;
    const untilLsn = current ? normalizeLsn(current) ?? null : null;
    return { point: { kind: 'time', at, input: 'head' }, history: { kind: 'upto', until: at, untilLsn }, ...(untilLsn ? { parentLsn: untilLsn } : {}) };
  }

  protected async productionLsn(): Promise<string | undefined> {
    const client = new pg.Client({ connectionString: this.config.productionUrl });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const { rows } = await client.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
      return rows[0]?.lsn;
    } catch {
      return undefined;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  protected workFor(fault: OperationFault | undefined, start: () => Promise<unknown>): JobWork {
    if (fault && 'failOperation' in fault) return { kind: 'fail', error: fault.error ?? 'fake-neon: injected operation failure' };
    if (fault && 'stallOperation' in fault) return { kind: 'stall' };
    return { kind: 'work', promise: start() };
  }

  protected startJob(work: JobWork, effects: JobEffects): Job {
    const job = new Job(work, this.config.operationMs, effects);
    this.jobs.add(job);
    return job;
  }

  /**
   * Takes a branch out of the project. With an injected failure it stays (the deletion failed);
   * with a stall it is gone but its instance lives until close, as its operations never end.
   */
  protected removeBranch(record: BranchRecord, fault: OperationFault | undefined): Job {
    const work = this.workFor(fault, () => record.backend.release());
    if (work.kind !== 'fail') {
      this.branches.delete(record.branch.id);
      for (const e of this.endpointsOf(record.branch.id)) this.closeEndpoint(e);
    }
    return this.startJob(work, {});
  }

}
