import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { z as Zod } from 'zod';

/**
 * Recovery instances live in `<workDir>/branches/<id>/`: `branch.json` (this record), `data/`
 * (the Postgres data directory) and `server.log`. The record never holds a password: the
 * instance is a copy of production, so the password comes from production's URL at read time.
 */
function localBranchRecordSchema(z: typeof Zod) {
  return z.object({
    id: z.string(),
    name: z.string(),
    source: z.string(),
    target: z.string(),
    createdAt: z.string(),
    expiresAt: z.string().nullable(),
    port: z.number(),
    /** Connection URL without password. */
    url: z.string(),
    backupId: z.string(),
    pgMajor: z.number(),
    secondsToQueryable: z.number().nullable(),
    recoveredTo: z.object({
      mode: z.enum(['target', 'end-of-archive']),
      /** The first commit recovery left out ("recovery stopping before commit …"), when Postgres said. */
      stoppedBefore: z.string().nullable(),
      lastTransaction: z.string().nullable(),
    }),
    purpose: z.string().default('recovery'),
  });
}

let loaded: ReturnType<typeof localBranchRecordSchema> | undefined;
/** zod loads with the first metadata file read, not at start-up. */
async function parseLocalBranchRecord(value: unknown) {
  loaded ??= localBranchRecordSchema((await import('zod')).z);
  return loaded.safeParse(value);
}

export type LocalBranchRecord = Zod.infer<ReturnType<typeof localBranchRecordSchema>>;

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
    const parsed = await parseLocalBranchRecord(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
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
