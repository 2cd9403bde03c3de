import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pickShape } from './metadata-shape.js';

/**
 * Local snapshots live beside the base backups they depend on, one file each in
 * `<backupDir>/restore-points/<name>.json`, so the backup directory alone says what it can
 * restore, and `backup prune` sees which backups a snapshot still needs.
 */
export interface RestorePoint {
  name: string;
  method: 'restore-point' | 'bookmark';
  /** Production's clock at the restore point, or the bookmarked instant (ISO, microseconds kept). */
  at: string | null;
  lsn: string | null;
  createdAt: string;
  /** The base backup recovery starts from (the newest that ended before the point). */
  backupId: string;
  systemIdentifier: string;
  /** Whether the WAL holding the point was seen in the archive when the snapshot was taken. */
  archived: boolean;
}

const parseRestorePoint = (value: unknown) =>
  pickShape<RestorePoint>(value, {
    name: 'string',
    method: ['restore-point', 'bookmark'],
    at: 'string|null',
    lsn: 'string|null',
    createdAt: 'string',
    backupId: 'string',
    systemIdentifier: 'string',
    archived: 'boolean',
  });

const dirOf = (backupDir: string) => join(backupDir, 'restore-points');

/** Restore points, oldest first. */
export async function listRestorePoints(backupDir: string): Promise<RestorePoint[]> {
  const names = await readdir(dirOf(backupDir)).catch(() => [] as string[]);
  const points: RestorePoint[] = [];
  for (const file of names) {
    if (!file.endsWith('.json')) continue;
    const text = await readFile(join(dirOf(backupDir), file), 'utf8').catch(() => undefined);
    const parsed = text ? parseRestorePoint(JSON.parse(text)) : undefined;
    if (parsed) points.push(parsed);
  }
  return points.sort((a, b) => (a.at ?? a.createdAt).localeCompare(b.at ?? b.createdAt) || a.createdAt.localeCompare(b.createdAt));
}

/** Written to a temp file and renamed: a crash never leaves half a restore point. */
export async function writeRestorePoint(backupDir: string, point: RestorePoint): Promise<void> {
  await mkdir(dirOf(backupDir), { recursive: true });
  const path = join(dirOf(backupDir), `${point.name}.json`);
  await writeFile(`${path}.tmp`, JSON.stringify(point, null, 2) + '\n');
  await rename(`${path}.tmp`, path);
}

export async function removeRestorePoint(backupDir: string, name: string): Promise<void> {
  await rm(join(dirOf(backupDir), `${name}.json`), { force: true });
}
