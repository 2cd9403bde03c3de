import type pg from 'pg';
import { PitrError } from '../../errors.js';
import { formatLsn, lsnToBigInt } from '../../time/lsn.js';
import { segmentFileName, segmentOfLsn } from './wal-archive.js';

// pg (and the fetch machinery it pulls in) loads on the first connection, not at start-up.
const connect = async (...args: Parameters<typeof import('../../db/connect.js').connect>) => (await import('../../db/connect.js')).connect(...args);

export interface ArchiverStats {
  archivedCount: number;
  lastArchivedWal: string | null;
  lastArchivedTime: string | null;
  failedCount: number;
  lastFailedWal: string | null;
  lastFailedTime: string | null;
}

export interface ProductionFacts {
  serverVersion: string;
  major: number;
  systemIdentifier: string;
  walSegmentSize: number;
  timeline: number;
  archiveMode: string;
  archiveTimeoutSeconds: number;
  walLevel: string;
  currentWal: string | null;
  now: string;
  archiver: ArchiverStats;
}

/** Opens a connection to production, turning any failure into a one-line "unreachable" error. */
export async function connectProduction(url: string): Promise<pg.Client> {
  try {
    return await connect(url, { applicationName: 'pitr' });
  } catch (err) {
    if (err instanceof PitrError) {
      throw new PitrError('production_unreachable', `production is unreachable: ${err.message.replace(/^cannot connect to /, `cannot connect to `)}`, {
        cause: err,
      });
    }
    throw err;
  }
}

export async function readProductionFacts(client: pg.Client): Promise<ProductionFacts> {
  const { rows } = await client.query(`
    select current_setting('server_version') as server_version,
           current_setting('server_version_num')::int as version_num,
           (select system_identifier::text from pg_control_system()) as system_identifier,
           pg_size_bytes(current_setting('wal_segment_size')) as wal_segment_size,
           (select timeline_id from pg_control_checkpoint()) as timeline,
           current_setting('archive_mode') as archive_mode,
           current_setting('archive_timeout') as archive_timeout,
           current_setting('wal_level') as wal_level,
           case when pg_is_in_recovery() then null else pg_walfile_name(pg_current_wal_lsn()) end as current_wal,
           now() as now,
           a.archived_count, a.last_archived_wal, a.last_archived_time,
           a.failed_count, a.last_failed_wal, a.last_failed_time
      from pg_stat_archiver a`);
  const r = rows[0];
  return {
    serverVersion: r.server_version,
    major: Math.floor(r.version_num / 10000),
    systemIdentifier: r.system_identifier,
    walSegmentSize: Number(r.wal_segment_size),
    timeline: Number(r.timeline),
    archiveMode: r.archive_mode,
    archiveTimeoutSeconds: parseArchiveTimeout(r.archive_timeout),
    walLevel: r.wal_level,
    currentWal: r.current_wal,
    now: new Date(r.now).toISOString(),
    archiver: {
      archivedCount: Number(r.archived_count),
      lastArchivedWal: r.last_archived_wal,
      lastArchivedTime: r.last_archived_time ? new Date(r.last_archived_time).toISOString() : null,
      failedCount: Number(r.failed_count),
      lastFailedWal: r.last_failed_wal,
      lastFailedTime: r.last_failed_time ? new Date(r.last_failed_time).toISOString() : null,
    },
  };
}

function parseArchiveTimeout(text: string): number {
  const m = /^(\d+)\s*(ms|s|min|h|d)?$/.exec(text.trim());
  if (!m) return 0;
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return unit === 'ms' ? n / 1000 : unit === 'min' ? n * 60 : unit === 'h' ? n * 3600 : unit === 'd' ? n * 86400 : n;
}

/** Archiving problems that make point-in-time recovery unsafe, in words an operator acts on. */
export function archivingProblems(facts: ProductionFacts): string[] {
  const problems: string[] = [];
  if (facts.walLevel === 'minimal') problems.push('wal_level is minimal: set wal_level = replica (or logical) for point-in-time recovery');
  if (facts.archiveMode === 'off') problems.push('archive_mode is off: WAL is not archived, so no point in time can be recovered');
  const a = facts.archiver;
  if (a.lastFailedTime && (!a.lastArchivedTime || a.lastFailedTime > a.lastArchivedTime)) {
    problems.push(`WAL archiving is failing: ${a.failedCount} failures, last ${a.lastFailedWal ?? '?'} at ${a.lastFailedTime}`);
  }
  return problems;
}

export interface WalSwitch {
  /** Segment that holds every WAL record written before the switch. */
  segment: string;
  /** Production's clock at the switch: the archive covers at least up to this instant once `segment` is archived. */
  at: string;
  archived: boolean;
}

/**
 * Forces the current WAL segment into the archive so the newest commits are recoverable (the
 * archiver otherwise waits for the segment to fill or archive_timeout), then waits for the
 * archiver to report it. Returns archived=false when it did not arrive in time.
 */
export async function switchWalAndWait(client: pg.Client, waitMs: number, signal?: AbortSignal): Promise<WalSwitch> {
  const { rows } = await client.query(
    `select lsn::text as lsn, pg_walfile_name(lsn) as file, now() as at, (select setting from pg_settings where name = 'wal_segment_size') as segment_size
       from pg_switch_wal() as lsn`,
  );
  // The segment holding the last byte written before the switch. Not pg_walfile_name(lsn): when
  // nothing was written since the previous switch, lsn is the start of the next segment, which
  // PostgreSQL 17 names as that (empty, never archived) segment where older versions named the
  // one before it, and the wait below would then run out every time.
  const segmentSize = Number(rows[0].segment_size);
  const timeline = parseInt(String(rows[0].file).slice(0, 8), 16);
  const segment = segmentFileName(timeline, segmentOfLsn(formatLsn(lsnToBigInt(rows[0].lsn) - 1n), segmentSize), segmentSize);
  const at = new Date(rows[0].at).toISOString();
  const deadline = Date.now() + waitMs;
  for (;;) {
    const { rows: s } = await client.query(`select last_archived_wal from pg_stat_archiver`);
    const last: string | null = s[0].last_archived_wal;
    // Same-length hex names of one timeline sort like their positions; a newer timeline sorts later.
    // Only plain segment names compare by position (a .history or .partial name does not).
    if (last && /^[0-9A-F]{24}$/.test(last) && last >= segment) return { segment, at, archived: true };
    if (Date.now() >= deadline || signal?.aborted) return { segment, at, archived: false };
    await new Promise((r) => setTimeout(r, 25));
  }
}
