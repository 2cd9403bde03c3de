import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExportResult, VerifyResult } from '../export/index.js';
import type { ListedExport } from '../export/list.js';
import type { RestoreResult } from '../export/restore.js';
import { formatCompactUtc } from '../time/index.js';
import { formatBytes, formatCount, markdownCell, renderFields, renderTable } from './format.js';
import { writeRunReport } from './write.js';

const rows = formatCount;
const plural = (n: number, word: string) => `${rows(n)} ${word}${n === 1 ? '' : 's'}`;
/** `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → `pg_dump 15.18`. */
const shortVersion = (v: string) => v.replace(/^(\S+) \(PostgreSQL\) (\S+).*$/, '$1 $2');

/** An export as people read it; `verifyCommand` is the command line that checks it. */
export function renderExport(r: ExportResult, verifyCommand: string): string {
  return [
    `Exported ${r.source} to ${r.dumpObject}`,
    renderFields([
      ['manifest', r.manifestObject],
      ['state', r.target ?? 'current'],
      ['dump', `${formatBytes(r.bytes)} (pg_dump -Fc, sha256 ${r.sha256.slice(0, 16)}…), ${formatBytes(r.encryptedBytes)} encrypted (AES-256-GCM, key id ${r.keyId})`],
      ['tables', `${rows(r.tables)} (${plural(r.rows, 'row')}${r.consistent ? ', counted in the dump\'s snapshot' : ''})`],
      ['server', `PostgreSQL ${r.server}; ${shortVersion(r.pgDump)}`],
      ['time', `${r.seconds.toFixed(1)} s (${r.mbPerSecond.toFixed(1)} MB/s of dump)`],
    ]),
    ...r.warnings.map((w) => `warning: ${w}`),
    '',
    `Check it with: ${verifyCommand}`,
  ].join('\n');
}

export function renderVerify(r: VerifyResult): string {
  const m = r.manifest;
  return [
    `Export ${r.name} verified: every chunk authenticated, ${formatBytes(r.authenticated.encryptedBytes)} decrypted in ${r.authenticated.seconds.toFixed(1)} s (${r.authenticated.mbPerSecond.toFixed(1)} MB/s), sizes and sha256 equal the manifest`,
    renderFields([
      ['dump', r.dumpObject],
      ['source', m.source],
      ['state', m.target ?? `current (as of ${m.createdAt})`],
      ['made', `${m.createdAt} by pitr ${m.tool.version} with ${shortVersion(m.pgDump.version)} from PostgreSQL ${m.server.version}`],
      ['pg_restore', `lists ${rows(r.list.entries)} ${r.list.entries === 1 ? 'entry' : 'entries'}, ${rows(r.list.tableData)} with table data`],
      [
        'restore',
        r.restore
          ? `restored into a throw-away PostgreSQL ${r.restore.server} in ${r.restore.seconds.toFixed(1)} s: ${plural(r.restore.tables, 'table')}, ${plural(r.restore.rows, 'row')}, every count equal to the manifest`
          : 'not tried (add --restore)',
      ],
    ]),
  ].join('\n');
}

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
    `- rows: ${formatCount(r.rows)} in ${formatCount(r.tables.length)} tables`,
    '',
    '| table | manifest rows | restored rows |',
    '|---|---:|---:|',
    ...r.tables.map((t) => `| ${markdownCell(`${t.schema}.${t.name}`)} | ${formatCount(t.expected)} | ${formatCount(t.restored)} |`),
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
  await writeRunReport(out, r, renderRestoreMarkdown(r), { mode: 0o600 });
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
      e.tables === null ? '-' : formatCount(e.tables),
      e.rows === null ? '-' : formatCount(e.rows),
      e.pgDump ? `${e.pgDump.replace(/^pg_dump \(PostgreSQL\) (\S+).*$/, '$1')} / ${e.server ?? '-'}` : '-',
      auth(e),
    ]),
  ];
  const lines = renderTable(rows).split('\n');
  const problems = list.filter((e) => e.problem).map((e) => `${e.name}: ${e.problem}`);
  return [`Exports in ${location}, newest first:`, ...lines, ...(problems.length ? ['', ...problems] : [])].join('\n');
}
