/**
 * bench/branch-neon: pitr's own overhead per `pitr --at` on Neon, beyond the API's operation
 * time, measured against the fake Neon API (test/fakes/neon) with latency injected.
 *
 *   npm run bench:branch-neon [-- --rounds N]      (or BENCH_ROUNDS=N; default 3)
 *
 * A throw-away PostgreSQL cluster with WAL archiving plays production (~50k rows); after one
 * `pitr backup`, a target instant T1 and a few later writes, one fake Neon API per injected
 * latency L (0, 50, 150 ms added to every HTTP response) serves it, each with operationMs = 2000
 * (an operation ends at max(created + 2 s, when the fake's local restore finished)). Each round
 * runs `node dist/cli/main.js --at T1 --json --name bench-<L>-<i>` as a child process per L
 * (the order of the L's alternates between rounds, so drift falls on all of them alike) and
 * deletes the branch afterwards, outside the timing.
 *
 *   wall        spawn → exit of the child
 *   operation   the branch's first operation created → its last operation finished, on the
 *               fake's clock (ms-exact: created from an in-flight snapshot taken when the POST is
 *               answered, finished = created + total_duration_ms)
 *   overhead    wall − operation = (start → operation created) + (operation finished → exit)
 *
 * The overhead is split into parts that add up to it:
 *
 *   startup     `node dist/cli/main.js --version`, spawn to exit (measured once)
 *   latency     L × the requests that lie wholly outside the operation: those answered before it
 *               was created (project, branches, databases) and those handled after it finished
 *               (the poll that saw it finished, the polls of the request's other operations,
 *               connection_uri). The other requests' latency is hidden behind the operation,
 *               except where it delays the poll that sees the end, which is counted in:
 *   poll lag    operation finished → the fake handled pitr's last operation poll, less the
 *               latency of the other polls handled after the finish (counted in `latency`)
 *   rest        overhead − the three above: pitr's own work (config, pg connect + `select 1`
 *               through the endpoint proxy, output, exit) and the fake's handler time
 *
 * `requests × L` (all requests' injected latency) is printed too, but it is not a part of the
 * overhead: most of it overlaps the operation.
 */
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempRoot, startCluster, switchAndArchiveWal, type TestCluster } from '../test/support/cluster.js';
import { runPitr, type CliRun } from '../test/support/cli.js';
import { startFakeNeon, type ApiOperation, type FakeNeon, type RecordedRequest } from '../test/fakes/neon/index.js';
import { cleanupOnSignal, roundsSetting, median, pad } from './support.js';

const LATENCIES_MS = [0, 50, 150];
const OPERATION_MS = 2000;
const ROWS = 50_000;
const API_KEY = 'napi_bench_k3y_not_a_secret_0123456789';
const RUN_TIMEOUT_MS = 180_000;

const ms = (v: number) => String(Math.round(v));

/**
 * One fake per latency, with what the fake does not record itself: when each request was
 * answered (its record is pushed right after the injected delay, just before the response is
 * written) and, for operations, their creation instant to the millisecond (the API's created_at
 * has seconds precision).
 */
interface Lane {
  latencyMs: number;
  fake: FakeNeon;
  env: Record<string, string>;
  /** answeredAt[i]: epoch ms at which fake.requests[i] was answered. */
  answeredAt: number[];
  /** Operation id → epoch ms created. */
  createdAt: Map<string, number>;
}

function instrument(lane: Omit<Lane, 'answeredAt' | 'createdAt'>): Lane {
  const answeredAt: number[] = [];
  const createdAt = new Map<string, number>();
  const { fake } = lane;
  const push = fake.requests.push.bind(fake.requests);
  Object.defineProperty(fake.requests, 'push', {
    configurable: true,
    value: (...items: RecordedRequest[]) => {
      const now = Date.now();
      for (const _ of items) answeredAt.push(now);
      // A mutation answered: its operations are running, so total_duration_ms = now − created.
      // (The fake's handlers refresh the same state on every request: this snapshot changes nothing.)
      if (items.some((r) => r.method !== 'GET' && r.status < 300)) {
        const before = Date.now();
        for (const op of fake.state().operations) {
          if (!createdAt.has(op.id) && String(op.status) !== 'finished' && String(op.status) !== 'failed') createdAt.set(op.id, before - op.total_duration_ms);
        }
      }
      return push(...items);
    },
  });
  return { ...lane, answeredAt, createdAt };
}

/** Runs of a repeated group of 1 or 2 items as "n × [a, b]", for a readable request list. */
function compress(items: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < items.length; ) {
    let best = { size: 1, times: 1 };
    for (const size of [1, 2]) {
      let times = 1;
      while (items.slice(i + times * size, i + (times + 1) * size).join('\n') === items.slice(i, i + size).join('\n') && i + (times + 1) * size <= items.length) times++;
      if (times > 1 && times * size > best.times * best.size) best = { size, times };
    }
    const group = items.slice(i, i + best.size);
    out.push(best.times > 1 ? `${best.times} × [${group.join(', ')}]` : group[0]!);
    i += best.size * best.times;
  }
  return out;
}

interface RoundResult {
  latencyMs: number;
  round: number;
  branchId: string;
  wallMs: number;
  reportedMs: number;
  operationMs: number;
  overheadMs: number;
  requests: number;
  requestsTimesLatencyMs: number;
  criticalRequests: number;
  latencyMsOnPath: number;
  pollLagMs: number;
  startupMs: number;
  restMs: number;
  beforeOperationMs: number;
  afterOperationMs: number;
  /** Last API response → exit: pg connect + select 1 through the endpoint proxy, output, exit. */
  tailMs: number;
  polls: number;
  requestList: string[];
}

async function oneRound(lane: Lane, round: number, t1: string, startupMs: number, live: Map<string, Lane>): Promise<RoundResult> {
  const { fake, latencyMs: L } = lane;
  const first = fake.requests.length;
  const t0 = Date.now();
  const r: CliRun = await runPitr(['--at', t1, '--json', '--name', `bench-${L}-${round}`], lane.env, { timeoutMs: RUN_TIMEOUT_MS });
  const tEnd = Date.now();
  if (r.code !== 0 || !r.json?.id) throw new Error(`pitr --at (L=${L}) exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  const branchId: string = r.json.id;
  live.set(branchId, lane);

  const requests = fake.requests.slice(first);
  const answered = lane.answeredAt.slice(first);
  const ops: ApiOperation[] = fake.state().operations.filter((op) => op.branch_id === branchId);
  if (ops.length === 0 || ops.some((op) => String(op.status) !== 'finished')) {
    throw new Error(`L=${L}: branch ${branchId} has operations ${JSON.stringify(ops.map((o) => [o.action, o.status]))}`);
  }
  const created = ops.map((op) => lane.createdAt.get(op.id) ?? Date.parse(op.created_at));
  const finished = ops.map((op, i) => created[i]! + op.total_duration_ms);
  const opCreated = Math.min(...created);
  const opFinished = Math.max(...finished);
  const operationMs = opFinished - opCreated;
  const overheadMs = tEnd - t0 - operationMs;

  // The fake answers a request L ms (the injected delay) after its handler ran.
  const handledAt = answered.map((a) => a - L);
  // pitr polls the request's operations one by one and stops polling each once it is seen
  // finished, so its last poll is when it knew they all were. The polls handled after the finish
  // are requests on the critical path (their latency is counted in `latency`); poll lag is the
  // rest of the time from the finish to that last poll: the poll interval, and the latency of
  // the polls that were in flight when the operation finished.
  const opIds = new Set(ops.map((op) => op.id));
  const pollIdx = requests.map((q, i) => (q.method === 'GET' && opIds.has(q.path.split('/operations/')[1] ?? '') ? i : -1)).filter((i) => i >= 0);
  const polls = pollIdx.length;
  const afterFinish = pollIdx.filter((i) => handledAt[i]! >= opFinished).length;
  const pollLagMs = afterFinish ? Math.max(0, handledAt[pollIdx.at(-1)!]! - opFinished - L * (afterFinish - 1)) : 0;
  const criticalRequests = requests.filter((_, i) => answered[i]! <= opCreated || handledAt[i]! >= opFinished).length;
  const latencyMsOnPath = criticalRequests * L;

  const del = await runPitr(['branches', 'delete', branchId], lane.env, { timeoutMs: RUN_TIMEOUT_MS });
  if (del.code !== 0) throw new Error(`pitr branches delete ${branchId} failed: ${del.stderr.trim()}`);
  live.delete(branchId);

  return {
    latencyMs: L,
    round,
    branchId,
    wallMs: tEnd - t0,
    reportedMs: Number(r.json.secondsToQueryable) * 1000,
    operationMs,
    overheadMs,
    requests: requests.length,
    requestsTimesLatencyMs: requests.length * L,
    criticalRequests,
    latencyMsOnPath,
    pollLagMs,
    startupMs,
    restMs: overheadMs - startupMs - latencyMsOnPath - pollLagMs,
    beforeOperationMs: opCreated - t0,
    afterOperationMs: tEnd - opFinished,
    tailMs: tEnd - Math.max(...answered),
    polls,
    requestList: compress(
      requests.map((q, i) => {
        const opId = q.path.split('/operations/')[1];
        const op = opId === undefined ? undefined : ops.find((o) => o.id === opId);
        const path = op ? `/operations/{${op.action}}` : q.path.replace(/^\/projects\/[^/]+/, '').replace(/\/br-[^/]+/, '/{id}') || '/';
        const after = handledAt[i]! >= opFinished ? '*' : '';
        return `${q.method} ${path}${q.status >= 300 ? ` ${q.status}` : ''}${after}`;
      }),
    ),
  };
}

const ROUNDS = roundsSetting();

let prod: TestCluster | undefined;
let root: string | undefined;
const lanes: Lane[] = [];
/** Branches alive right now, for cleanup. */
const live = new Map<string, Lane>();

let cleanedUp: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleanedUp ??= (async () => {
    for (const [id, lane] of live) await runPitr(['branches', 'delete', id], lane.env).catch(() => undefined);
    for (const lane of lanes) await lane.fake.close().catch((err: unknown) => console.error(`could not close the fake (L=${lane.latencyMs}): ${(err as Error).message}`));
    await prod?.destroy().catch((err: unknown) => console.error(`could not destroy the cluster: ${(err as Error).message}`));
    if (root) await rm(root, { recursive: true, force: true });
  })();
  return cleanedUp;
}
cleanupOnSignal(cleanup);

try {
  console.log(`bench/branch-neon: ${ROUNDS} round(s) per latency, latencies ${LATENCIES_MS.join('/')} ms per HTTP response, operationMs ${OPERATION_MS}, ~${ROWS / 1000}k rows\n`);
  prod = await startCluster({ archive: true });
  root = await makeTempRoot('pitr-bench-neon-');
  const local = { DATABASE_URL: prod.url, PITR_BACKUP_DIR: join(root, 'backups'), PITR_WAL_ARCHIVE: prod.archiveDir, PITR_WORK_DIR: join(root, 'fake-pitr') };

  // 1. Production, a base backup, T1, a few writes after it, all of it archived.
  await prod.query(`create table items(id int primary key, note text not null, payload text not null);
    insert into items select g, 'before', md5(g::text) from generate_series(1, ${ROWS}) g; analyze items`);
  const backup = await runPitr(['backup', '--json'], local, { timeoutMs: RUN_TIMEOUT_MS });
  if (backup.code !== 0) throw new Error(`pitr backup failed: ${backup.stderr.trim()}`);
  await prod.query(`update items set note = 'edited' where id % 100 = 0`);
  await new Promise((r) => setTimeout(r, 20));
  const t1 = (await prod.query<{ now: string }>('select now()::text as now'))[0]!.now;
  await new Promise((r) => setTimeout(r, 20));
  await prod.query(`delete from items where id <= 1000`);
  await prod.query(`insert into items select g, 'after', md5(g::text) from generate_series(${ROWS + 1}, ${ROWS + 500}) g`);
  await switchAndArchiveWal(prod);
  console.log(`pitr backup ${backup.json?.id}; T1 = ${t1}`);

  // 2. One fake per latency (each its own project, so each its own instance directory).
  for (const latencyMs of LATENCIES_MS) {
    const fake = await startFakeNeon({
      apiKey: API_KEY,
      projectId: `bench-latency-${latencyMs}`,
      production: { url: prod.url, backupDir: local.PITR_BACKUP_DIR, walArchive: prod.archiveDir, workDir: local.PITR_WORK_DIR },
      operationMs: OPERATION_MS,
      latencyMs,
    });
    lanes.push(instrument({ latencyMs, fake, env: { NEON_API_KEY: API_KEY, NEON_PROJECT_ID: fake.projectId, NEON_API_HOST: fake.apiHost, PITR_WORK_DIR: join(root, 'pitr') } }));
  }

  // Node start-up + pitr's module graph + exit, the floor of every run.
  const v0 = Date.now();
  const version = await runPitr(['--version']);
  const startupMs = Date.now() - v0;
  if (version.code !== 0) throw new Error(`pitr --version exited ${version.code}`);
  // For scale: Node alone, without pitr's modules.
  const b0 = Date.now();
  await new Promise<void>((resolve, reject) => spawn(process.execPath, ['-e', ''], { stdio: 'ignore' }).on('error', reject).on('close', () => resolve()));
  const bareNodeMs = Date.now() - b0;
  console.log(`node dist/cli/main.js --version: ${startupMs} ms (node -e '': ${bareNodeMs} ms)\n`);

  // 3. Rounds, alternating the order of the latencies.
  const results: RoundResult[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const lane of round % 2 ? lanes : [...lanes].reverse()) {
      const res = await oneRound(lane, round, t1, startupMs, live);
      results.push(res);
      console.log(
        `round ${round} L=${String(lane.latencyMs).padStart(3)} ms: wall ${ms(res.wallMs)} ms, operation ${ms(res.operationMs)} ms, overhead ${ms(res.overheadMs)} ms, ${res.requests} requests (${res.polls} polls)`,
      );
    }
  }

  // 4. Report, per latency.
  const cols: [string, (r: RoundResult) => number][] = [
    ['wall', (r) => r.wallMs],
    ['operation', (r) => r.operationMs],
    ['overhead', (r) => r.overheadMs],
    ['requests', (r) => r.requests],
    ['req×L', (r) => r.requestsTimesLatencyMs],
    ['startup', (r) => r.startupMs],
    ['latency', (r) => r.latencyMsOnPath],
    ['poll lag', (r) => r.pollLagMs],
    ['rest', (r) => r.restMs],
    ['reported', (r) => r.reportedMs],
  ];
  const summary = LATENCIES_MS.map((latencyMs) => {
    const rs = results.filter((r) => r.latencyMs === latencyMs);
    const med = (f: (r: RoundResult) => number) => median(rs.map(f));
    console.log(`\nL = ${latencyMs} ms per response (ms; overhead = wall − operation = startup + latency + poll lag + rest)`);
    console.log(
      pad([
        ['round', ...cols.map(([name]) => name)],
        ...rs.map((r) => [String(r.round), ...cols.map(([, f]) => ms(f(r)))]),
        ['median', ...cols.map(([, f]) => ms(med(f)))],
      ]),
    );
    console.log(
      `  before the operation: ${ms(med((r) => r.beforeOperationMs))} ms, after it: ${ms(med((r) => r.afterOperationMs))} ms` +
        ` (last API response → exit: ${ms(med((r) => r.tailMs))} ms); requests on the critical path: ${med((r) => r.criticalRequests)} of ${med((r) => r.requests)}`,
    );
    console.log(`  requests of round ${rs[0]!.round} (* = handled after the operation finished): ${rs[0]!.requestList.join(', ')}`);
    return {
      latencyMs,
      median: Object.fromEntries(
        (['wallMs', 'operationMs', 'overheadMs', 'requests', 'requestsTimesLatencyMs', 'criticalRequests', 'latencyMsOnPath', 'pollLagMs', 'startupMs', 'restMs', 'reportedMs', 'beforeOperationMs', 'afterOperationMs', 'tailMs', 'polls'] as const).map(
          (k) => [k, Math.round(med((r) => r[k]))],
        ),
      ),
      runs: rs.map(({ requestList: _, branchId: __, ...r }) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v)]))),
    };
  });

  console.log('\n' + JSON.stringify({ bench: 'branch-neon', rounds: ROUNDS, rows: ROWS, operationMsSetting: OPERATION_MS, nodeStartupMs: startupMs, bareNodeMs, latencies: summary }));
} catch (err) {
  console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
