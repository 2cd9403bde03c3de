import type pg from 'pg';
import { serverFacts } from '../db/server-facts.js';
import { normalSessionSql } from '../db/session.js';
import type { Connector } from './types.js';

const NORMAL_SESSION_SQL = normalSessionSql('pitr diff');

/**
 * Several connections per side reading one snapshot: the caller's session exports its snapshot
 * (pg_export_snapshot) and every extra connection starts a REPEATABLE READ transaction on it, so
 * the N connections see exactly the rows the first one sees and the result is the same for any N.
 */
export interface SideJobs {
  clients: pg.ClientBase[];
  close(): Promise<void>;
}

const SNAPSHOT_ID = /^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$/i;

export async function openJobs(main: pg.ClientBase, connect: Connector | undefined, jobs: number): Promise<SideJobs> {
  const extra: pg.Client[] = [];
  const close = async () => {
    await Promise.all(extra.map(async (c) => {
      await c.query('rollback').catch(() => undefined);
      await c.end().catch(() => undefined);
    }));
  };
  if (jobs <= 1 || !connect) return { clients: [main], close };
  let earlier: string | null = null;
  try {
    // The main session becomes a job too (JOB_SQL) in the same round trip; the earlier value is kept to put back if no job can join.
    const { rows } = await main.query(`with earlier as materialized (select current_setting('max_parallel_workers_per_gather') as v) select earlier.v as earlier, pg_export_snapshot() as s, ${JOB_SETTING} from earlier`);
    earlier = String(rows[0].earlier);
    const snapshot = String(rows[0].s);
    if (!SNAPSHOT_ID.test(snapshot)) throw new Error(`unexpected snapshot id ${snapshot}`);
    await Promise.all(
      Array.from({ length: jobs - 1 }, async () => {
        const c = await connect();
        extra.push(c);
        // One round trip (the snapshot id is checked above): over a 20 ms link each statement alone cost as much as hashing thousands of rows.
        await c.query(`begin isolation level repeatable read read only; set transaction snapshot '${snapshot}'; ${NORMAL_SESSION_SQL}; ${DIFF_SESSION_SQL}; ${JOB_SQL}`);
      }),
    );
    return { clients: [main, ...extra], close };
  } catch {
    // Parallelism is only an optimisation: a server that cannot share its snapshot gets one job.
    await close();
    if (earlier !== null) await main.query(`select set_config('max_parallel_workers_per_gather', $1, true)`, [earlier]).catch(() => undefined);
    return { clients: [main], close: async () => undefined };
  }
}

/**
 * Transaction-local settings for diff queries: room for the first pass's hash table (up to
 * ~131k segments) without spilling, and no JIT: the planner's cost estimates for these queries
 * are high, JIT compiles for hundreds of milliseconds, and the work is in hashing, not expressions.
 */
export async function tuneDiffSession(client: pg.ClientBase): Promise<void> {
  await client.query(DIFF_SESSION_SQL);
}
const DIFF_SESSION_SQL = `select set_config('work_mem', '32MB', true), set_config('jit', 'off', true)`;

/** The jobs are the parallelism: Postgres's own parallel workers would only compete with them. */
const JOB_SETTING = `set_config('max_parallel_workers_per_gather', '0', true)`;
const JOB_SQL = `select ${JOB_SETTING}`;

/** Default jobs: what one parallel query would use on the weaker side, between 1 and 4. */
export async function defaultJobs(branch: pg.ClientBase, production: pg.ClientBase): Promise<number> {
  const one = async (c: pg.ClientBase) => (await serverFacts(c)).parallelWorkersPerGather + 1;
  const [b, p] = await Promise.all([one(branch), one(production)]);
  return Math.max(1, Math.min(4, b, p));
}

/**
 * Runs tasks on a pool of workers (one per job); results come back in task order, each as soon
 * as it and all before it are done, so the caller can emit in a stable order with bounded memory.
 */
export async function* inOrder<T, R>(tasks: Iterable<T>, workers: number, run: (task: T, worker: number) => Promise<R>): AsyncGenerator<R> {
  const iterator = tasks[Symbol.iterator]();
  const pending: Promise<R>[] = [];
  const free: number[] = Array.from({ length: workers }, (_, i) => i);
  const waiters: ((w: number) => void)[] = [];
  const acquire = () => (free.length ? Promise.resolve(free.pop()!) : new Promise<number>((r) => waiters.push(r)));
  const release = (w: number) => {
    const next = waiters.shift();
    if (next) next(w);
    else free.push(w);
  };
  const start = (task: T) =>
    acquire().then(async (w) => {
      try {
        return await run(task, w);
      } finally {
        release(w);
      }
    });
  // Keep at most `workers` tasks ahead of the one being emitted.
  for (;;) {
    while (pending.length < workers) {
      const next = iterator.next();
      if (next.done) break;
      const p = start(next.value);
      p.catch(() => undefined);
      pending.push(p);
    }
    if (pending.length === 0) return;
    yield await pending.shift()!;
  }
}
