import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatCompactUtc } from '../time/index.js';
import type { ListedExport } from './list.js';
import type { RestoreResult } from './restore.js';

const n = (x: number) => x.toLocaleString('en-US');
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The restore report as Markdown: what was restored, from what, how long, every table's count. */
export function renderRestoreMarkdown(r: RestoreResult): string {
  const e = r.export;
  return [
    `# Restore of export ${r.name}: every row count equals the manifest`,
    '',
    `- into: ${r.into} (database ${r.database}, PostgreSQL ${r.server})`,
    `- state: production as it was at ${e.target ?? e.createdAt} (source ${e.source}, exported ${e.createdAt})`,
    `- export: ${r.object} (${(r.encryptedBytes / 1024 / 1024).toFixed(1)} MB encrypted, key id ${e.keyId}, ${e.pgDump.replace(/ \(Debian.*$/, '')} from PostgreSQL ${e.server})`,
    `- how: ${r.mode === 'stream' ? 'streamed into pg_restore in one transaction (nothing decrypted on disk)' : `pg_restore --jobs ${r.jobs} from a private temporary file (removed)`}; owners ${r.owners ? 'kept' : 'not restored (--no-owner)'}, privileges ${r.privileges ? 'kept' : 'not restored (--no-acl)'}`,
    `- time: ${r.seconds.total.toFixed(1)} s from start to verified counts (restore ${r.seconds.restore.toFixed(1)} s at ${r.mbPerSecond.toFixed(1)} MB/s, counting ${r.seconds.count.toFixed(1)} s)`,
    `- rows: ${n(r.rows)} in ${n(r.tables.length)} tables`,
    '',
    '| table | manifest rows | restored rows |',
    '|---|---:|---:|',
    ...r.tables.map((t) => `| ${cell(`${t.schema}.${t.name}`)} | ${n(t.expected)} | ${n(t.restored)} |`),
    '',
  ].join('\n');
}

/** Writes report.json and report.md under `<dir>/restore-<name>-<time>/` (0600 files, 0700 directory). */
export async function writeRestoreReport(dir: string, r: RestoreResult): Promise<string> {
  const out = join(dir, `restore-${r.name}-${formatCompactUtc(new Date())}`);
  // Only the report's own directory is private: the work directory above it must stay traversable
  // for the postgres OS user (recovery instances live there too).
  await mkdir(dir, { recursive: true });
  await mkdir(out, { mode: 0o700 });
  await writeFile(join(out, 'report.json'), JSON.stringify(r, null, 2) + '\n', { mode: 0o600 });
  await writeFile(join(out, 'report.md'), renderRestoreMarkdown(r), { mode: 0o600 });
  return out;
}

export function renderExportList(location: string, list: ListedExport[]): string {
  if (list.length === 0) return `No exports in ${location}. Make one with: pitr export --to ${location}`;
  const size = (b: number | null) => (b === null ? '-' : `${(b / 1024 / 1024).toFixed(1)} MB`);
  const auth = (e: ListedExport) => (e.authenticated === null ? 'no key' : e.authenticated ? 'yes' : 'NO');
  const rows = [
    ['NAME', 'STATE', 'MADE', 'SIZE', 'TABLES', 'ROWS', 'PG_DUMP / SERVER', 'AUTHENTIC'],
    ...list.map((e) => [
      e.name,
      e.target ?? 'current',
      e.createdAt,
      size(e.bytes),
      e.tables === null ? '-' : n(e.tables),
      e.rows === null ? '-' : n(e.rows),
      e.pgDump ? `${e.pgDump.replace(/^pg_dump \(PostgreSQL\) (\S+).*$/, '$1')} / ${e.server ?? '-'}` : '-',
      auth(e),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  const problems = list.filter((e) => e.problem).map((e) => `${e.name}: ${e.problem}`);
  return [`Exports in ${location}, newest first:`, ...lines, ...(problems.length ? ['', ...problems] : [])].join('\n');
}
