import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pickShape } from './metadata-shape.js';

/**
 * Recovery instances live in `<workDir>/branches/<id>/`: `branch.json` (this record), `data/`
 * (the Postgres data directory) and `server.log`. The record never holds a password: the
 * instance is a copy of production, so the password comes from production's URL at read time.
 */
export interface LocalBranchRecord {
  id: string;
  name: string;
  source: string;
  target: string;
  createdAt: string;
  expiresAt: string | null;
  port: number;
  /** Connection URL without password. */
  url: string;
  backupId: string;
  pgMajor: number;
  secondsToQueryable: number | null;
  recoveredTo: {
    mode: 'target' | 'end-of-archive';
    /** The first commit recovery left out ("recovery stopping before commit …"), when Postgres said. */
    stoppedBefore: string | null;
    lastTransaction: string | null;
  };
  purpose: string;
}

function parseLocalBranchRecord(value: unknown): LocalBranchRecord | undefined {
  const record = pickShape<LocalBranchRecord>(
    value,
    { id: 'string', name: 'string', source: 'string', target: 'string', createdAt: 'string', expiresAt: 'string|null', port: 'number', url: 'string', backupId: 'string', pgMajor: 'number', secondsToQueryable: 'number|null' },
    { purpose: 'string' },
    { purpose: 'recovery' },
  );
  const recoveredTo = pickShape<LocalBranchRecord['recoveredTo']>((value as { recoveredTo?: unknown } | undefined)?.recoveredTo, {
    mode: ['target', 'end-of-archive'],
    stoppedBefore: 'string|null',
    lastTransaction: 'string|null',
  });
  return record && recoveredTo ? { ...record, recoveredTo } : undefined;
}

export class BranchStore {
  constructor(readonly workDir: string) {}

  get root(): string {
    return join(this.workDir, 'branches');
  }

  dirOf(id: string): string {
    return join(this.root, id);
  }

  dataDirOf(id: string): string {
    return join(this.dirOf(id), 'data');
  }

  logOf(id: string): string {
    return join(this.dirOf(id), 'server.log');
  }

  async list(): Promise<LocalBranchRecord[]> {
    const ids = await readdir(this.root).catch(() => [] as string[]);
    const records: LocalBranchRecord[] = [];
    for (const id of ids) {
      const record = await this.read(id);
      if (record) records.push(record);
    }
    return records.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async read(id: string): Promise<LocalBranchRecord | undefined> {
    const text = await readFile(join(this.dirOf(id), 'branch.json'), 'utf8').catch(() => undefined);
    if (!text) return undefined;
    return parseLocalBranchRecord(JSON.parse(text));
  }

  async write(record: LocalBranchRecord): Promise<void> {
    const dir = this.dirOf(record.id);
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, 'branch.json.tmp');
    // The directory belongs to the postgres OS user: never write through a link planted there.
    await rm(tmp, { force: true });
    await writeFile(tmp, JSON.stringify(record, null, 2) + '\n', { flag: 'wx' });
    await rename(tmp, join(dir, 'branch.json'));
  }

  async remove(id: string): Promise<void> {
    await rm(this.dirOf(id), { recursive: true, force: true });
  }
}
