import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
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

export class RunStore {
  constructor(readonly workDir: string) {}

  get root(): string {
    return join(this.workDir, 'runs');
  }

  dir(id: string): string {
    return join(this.root, id);
  }

  async create(kind: RunState['kind']): Promise<RunState> {
    const now = new Date();
    const id = `${kind === 'undo' ? 'undo' : 'run'}-${formatCompactUtc(now)}-${randomBytes(2).toString('hex')}`;
    await mkdir(join(this.dir(id), 'data'), { recursive: true });
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
    const ids = await readdir(this.root).catch(() => [] as string[]);
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
