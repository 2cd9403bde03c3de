import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { badInput } from '../errors.js';
import { formatCompactUtc } from '../time/index.js';

/**
 * Every recovery is a run in `<workDir>/runs/<run-id>/`: its plan, the undo data saved before
 * anything was written, its state (planned → applying with the transaction id → applied /
 * rolled back → undone) and its report (JSON and Markdown).
 */
export type RunStatus = 'planned' | 'applying' | 'applied' | 'failed' | 'unknown' | 'undone';

export interface RunState {
  id: string;
  kind: 'recover' | 'undo';
  status: RunStatus;
  createdAt: string;
  updatedAt: string;
  /** Production transaction that applies the run: txid_status() settles an interrupted run. */
  txid: string | null;
  /** For undo runs: the run they reverse. */
  undoOf?: string;
  summary?: string;
  error?: string;
}

/** Run ids as pitr makes them (older runs had 4 hex digits); anything else never becomes a path. */
const RUN_ID = /^(run|undo)-\d{8}T\d{6}Z-[0-9a-f]{4,32}$/;

export function checkRunId(id: string): string {
  if (!RUN_ID.test(id)) throw badInput('bad_run_id', `"${id}" is not a run id (run-<yyyymmddThhmmssZ>-<hex>, see pitr runs)`);
  return id;
}

async function syncDir(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export class RunStore {
  constructor(readonly workDir: string) {}

  get root(): string {
    return join(this.workDir, 'runs');
  }

  dir(id: string): string {
    return join(this.root, checkRunId(id));
  }

  async create(kind: RunState['kind']): Promise<RunState> {
    const now = new Date();
    // 64 random bits: ids cannot be guessed, and two runs in one second never share a directory.
    const id = `${kind === 'undo' ? 'undo' : 'run'}-${formatCompactUtc(now)}-${randomBytes(8).toString('hex')}`;
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    // Not recursive: fails if the directory exists, so a run never writes into another's.
    await mkdir(this.dir(id), { mode: 0o700 });
    await mkdir(join(this.dir(id), 'data'), { mode: 0o700 });
    await syncDir(this.dir(id));
    await syncDir(this.root);
    const state: RunState = { id, kind, status: 'planned', createdAt: now.toISOString(), updatedAt: now.toISOString(), txid: null };
    await this.save(state);
    return state;
  }

  async save(state: RunState): Promise<void> {
    state.updatedAt = new Date().toISOString();
    const tmp = join(this.dir(state.id), 'state.json.tmp');
    await writeFile(tmp, JSON.stringify(state, null, 2) + '\n');
    await rename(tmp, join(this.dir(state.id), 'state.json'));
  }

  async read(id: string): Promise<RunState> {
    const text = await readFile(join(this.dir(id), 'state.json'), 'utf8').catch(() => undefined);
    if (!text) throw badInput('unknown_run', `no run "${id}" in ${this.root} (see pitr runs)`);
    return JSON.parse(text) as RunState;
  }

  async list(): Promise<RunState[]> {
    const ids = (await readdir(this.root).catch(() => [] as string[])).filter((id) => RUN_ID.test(id));
    const states: RunState[] = [];
    for (const id of ids) states.push(await this.read(id).catch(() => undefined as never));
    return states.filter(Boolean).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async writeJson(id: string, name: string, value: unknown): Promise<void> {
    await writeFile(join(this.dir(id), name), JSON.stringify(value, null, 2) + '\n');
  }

  async readJson<T>(id: string, name: string): Promise<T> {
    return JSON.parse(await readFile(join(this.dir(id), name), 'utf8')) as T;
  }

  async writeText(id: string, name: string, text: string): Promise<void> {
    await writeFile(join(this.dir(id), name), text);
  }
}
