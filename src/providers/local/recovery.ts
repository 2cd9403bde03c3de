import { access, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { PitrError } from '../../errors.js';
import type { PostgresBinaries } from '../../system/postgres-binaries.js';
import { run, runChecked } from '../../system/process.js';
import { logReason, removeServerFile, renderConf, serverPid, startServer, stopServer, writeServerFile } from '../../system/postgres-server.js';
import { describePointInTime, formatPostgresTimestamp, type ResolvedPointInTime } from '../../time/index.js';
import type { ProgressSink } from '../types.js';
import type { BackupInfo } from './backups.js';
import type { WalSwitch } from './production.js';
import { parseSegmentName, segmentOfLsn } from './wal-archive.js';
import { SEALED_SETTINGS } from './seal.js';

// pg (and the fetch machinery it pulls in) loads on the first connection, not at start-up.
const connect = async (...args: Parameters<typeof import('../../db/connect.js').connect>) => (await import('../../db/connect.js')).connect(...args);

export interface InstanceRestore {
  bin: PostgresBinaries;
  backup: BackupInfo;
  target: ResolvedPointInTime;
  dataDir: string;
  logFile: string;
  port: number;
  restoreCommand: string;
  /** URL the instance will answer on (production's credentials, loopback port). */
  url: string;
  /** Explains a recovery that ended early (a directory archive can name the missing segment). */
  explainShortArchive: (redoDoneLsn: string | null) => Promise<string | null>;
  timeoutMs: number;
  signal?: AbortSignal;
  onProgress?: ProgressSink;
}

export interface InstanceRestoreResult {
  mode: 'target' | 'end-of-archive';
  stoppedBefore: string | null;
  lastTransaction: string | null;
}

/** Shell-quote for restore_command, which Postgres runs through /bin/sh. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export function directoryRestoreCommand(archiveDir: string): string {
  return `cp ${shellQuote(join(archiveDir, '%f'))} "%p"`;
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * Lays out a recovery instance: a copy of the base backup with recovery settings. Needs nothing
 * from production, so it runs while production is asked to switch WAL.
 */
export async function prepareInstance(req: InstanceRestore): Promise<void> {
  const { backup, dataDir } = req;
  req.onProgress?.({ phase: 'restore', message: `copying base backup ${backup.id}` });
  // A reflink copy is near-instant on btrfs/xfs and a plain copy elsewhere.
  await runChecked('cp', ['-a', '--reflink=auto', backup.dataDir, dataDir], { asServerUser: true, what: 'copying the base backup', code: 'restore_failed' });
  if (req.signal?.aborted) throw new PitrError('interrupted', 'interrupted while copying the base backup');
  await removeServerFile(join(dataDir, 'backup_manifest'));
  await ensureConfigFiles(dataDir);
  await writeServerFile(join(dataDir, 'recovery.signal'), '');
  const target: Record<string, string> =
    req.target.kind === 'lsn'
      ? { recovery_target_lsn: req.target.lsn }
      : req.target.kind === 'xid'
        ? // Stop just before its commit: every earlier commit is kept, nothing of it is.
          { recovery_target_xid: req.target.xid, recovery_target_inclusive: 'off' }
        : { recovery_target_time: formatPostgresTimestamp(req.target) };
  // postgresql.auto.conf is read last, so these win over anything copied from production.
  await writeServerFile(
    join(dataDir, 'postgresql.auto.conf'),
    '\n# pitr recovery instance\n' +
      renderConf({
        port: req.port,
        ...SEALED_SETTINGS,
        // A promoted copy must never push its new timeline into production's archive.
        archive_mode: 'off',
        archive_command: '',
        primary_conninfo: '',
        ssl: 'off',
        hot_standby: 'on',
        external_pid_file: '',
        cluster_name: 'pitr',
        restore_command: req.restoreCommand,
        recovery_target_timeline: 'latest',
        recovery_target_action: 'promote',
        ...target,
      }),
    true,
  );
}

/**
 * Replays archived WAL up to the target and promotes. `coverage` is proof that the archive
 * reaches at least that far (a WAL switch on production that was archived). The caller owns
 * cleanup: on any throw it must stop the server and remove the directory.
 */
export async function recoverInstance(req: InstanceRestore, coverage: WalSwitch | null): Promise<InstanceRestoreResult> {
  req.onProgress?.({ phase: 'replay', message: `replaying WAL to ${describePointInTime(req.target)}` });
  const deadline = Date.now() + req.timeoutMs;
  const outcome = await runRecovery(req, deadline);
  if (outcome.kind === 'promoted') return { mode: 'target', ...(await readStopFacts(req.logFile)) };

  const reason = logReason(outcome.log);
  if (/recovery ended before configured recovery target was reached/.test(reason)) {
    const redoDone = /redo done at ([0-9A-F]+\/[0-9A-F]+)/i.exec(outcome.log)?.[1] ?? null;
    const lastTx = /last completed transaction was at log time (.+)$/m.exec(outcome.log)?.[1]?.trim() ?? null;
    if (req.target.kind === 'time' && archiveReachesCoverage(req, coverage, redoDone)) {
      // No commit after the target exists anywhere in the archive, and the archive provably
      // reaches past the target: replaying all of it gives exactly the state at the target.
      // The restart resumes from the last restartpoint, not from the backup.
      req.onProgress?.({ phase: 'replay', message: 'no commit after the target in the archive: replaying to its end' });
      await writeServerFile(join(req.dataDir, 'postgresql.auto.conf'), renderConf({ recovery_target_time: '' }), true);
      const second = await runRecovery(req, deadline);
      if (second.kind === 'promoted') return { mode: 'end-of-archive', stoppedBefore: null, lastTransaction: lastTx };
      throw recoveryError(logReason(second.log), second.log);
    }
    const missing = await req.explainShortArchive(redoDone);
    if (missing) throw new PitrError('wal_missing', missing);
    throw new PitrError(
      'target_after_archive',
      `${describePointInTime(req.target)} is after the end of the archived WAL: Postgres says "recovery ended before configured recovery target was reached"` +
        (lastTx ? ` (the newest archived transaction is from ${lastTx})` : ''),
      { detail: outcome.log },
    );
  }
  throw recoveryError(reason, outcome.log);
}

function archiveReachesCoverage(req: InstanceRestore, c: WalSwitch | null, redoDoneLsn: string | null): boolean {
  if (!c?.archived || req.target.kind !== 'time' || !redoDoneLsn) return false;
  if (new Date(c.at).getTime() < req.target.at.getTime()) return false;
  const switched = parseSegmentName(c.segment, req.backup.walSegmentSize);
  // Replay must have reached the segment of the switch itself; stopping earlier means a gap.
  return switched !== undefined && segmentOfLsn(redoDoneLsn, req.backup.walSegmentSize) >= switched.number;
}

function recoveryError(reason: string, log: string): PitrError {
  if (/could not locate required checkpoint record/.test(reason)) {
    return new PitrError('wal_missing', `the WAL segment holding the base backup's start checkpoint is missing (Postgres: ${reason})`, { detail: log });
  }
  if (/requested recovery stop point is before consistent recovery point/.test(reason)) {
    return new PitrError('target_before_backup', `the target is inside the base backup's own window (Postgres: ${reason})`, { detail: log });
  }
  if (/WAL file is from different database system/.test(reason)) {
    return new PitrError('wrong_archive', `the WAL archive belongs to a different database system than the backup (Postgres: ${reason})`, { detail: log });
  }
  return new PitrError('recovery_failed', `recovery failed: ${reason}`, { detail: log });
}

type RecoveryOutcome = { kind: 'promoted' } | { kind: 'died'; log: string };

/**
 * Starts the instance and waits until it is promoted. `pg_ctl -w` returns at hot standby, long
 * before recovery ends, and a recovery that fails kills the server a moment later, so this
 * polls pg_is_in_recovery() and the postmaster's life together.
 */
async function runRecovery(req: InstanceRestore, deadline: number): Promise<RecoveryOutcome> {
  const logStart = await readFile(req.logFile, 'utf8').then((t) => t.length, () => 0);
  const newLog = async () => (await readFile(req.logFile, 'utf8').catch(() => '')).slice(logStart);
  // pg_ctl -w would only add its own 100 ms polling; this loop watches the server itself.
  try {
    await startServer(req.bin, req.dataDir, req.logFile, 0, false);
  } catch (err) {
    if (err instanceof PitrError && err.code === 'server_start_failed') return { kind: 'died', log: await newLog() };
    throw err;
  }
  const launched = Date.now();
  let seenAlive = false;
  let client: pg.Client | undefined;
  let lastReport = 0;
  try {
    for (;;) {
      if (req.signal?.aborted) throw new PitrError('interrupted', 'interrupted while replaying WAL');
      if (await serverPid(req.dataDir)) seenAlive = true;
      else if (seenAlive || Date.now() - launched > 15_000 || /\b(FATAL|PANIC):/.test(await newLog())) {
        // Give the postmaster a moment to write its log before reading why it died.
        await new Promise((r) => setTimeout(r, 50));
        return { kind: 'died', log: await newLog() };
      }
      if (Date.now() > deadline) {
        throw new PitrError('recovery_timeout', `WAL replay did not reach ${describePointInTime(req.target)} within the timeout (raise --timeout)`);
      }
      if (!client) client = await connect(req.url, { timeoutMs: 2000, driver: 'pg' }).catch((err: unknown) => rejectAuth(err));
      if (client) {
        const state = await client
          .query<{ r: boolean; ts: Date | null }>('select pg_is_in_recovery() as r, pg_last_xact_replay_timestamp() as ts')
          .catch(() => undefined);
        if (!state) {
          await client.end().catch(() => undefined);
          client = undefined;
        } else if (!state.rows[0]!.r) {
          return { kind: 'promoted' };
        } else if (Date.now() - lastReport > 1000 && state.rows[0]!.ts) {
          lastReport = Date.now();
          req.onProgress?.({ phase: 'replay', message: `replayed transactions up to ${state.rows[0]!.ts.toISOString()}` });
        }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await client?.end().catch(() => undefined);
  }
}

function rejectAuth(err: unknown): undefined {
  const cause = (err as { cause?: { code?: string } }).cause;
  if (cause?.code === '28P01' || cause?.code === '28000') {
    throw new PitrError(
      'branch_auth_failed',
      `the recovery instance rejects production's credentials on 127.0.0.1 (pg_hba.conf is copied from production): ${(err as Error).message}`,
    );
  }
  return undefined;
}

async function readStopFacts(logFile: string): Promise<Omit<InstanceRestoreResult, 'mode'>> {
  const log = await readFile(logFile, 'utf8').catch(() => '');
  const stop = /recovery stopping before commit of transaction \d+, time (.+)$/m.exec(log)?.[1]?.trim() ?? null;
  const last = /last completed transaction was at log time (.+)$/m.exec(log)?.[1]?.trim() ?? null;
  return { stoppedBefore: stop, lastTransaction: last };
}

/**
 * Debian-style clusters keep postgresql.conf and pg_hba.conf in /etc, outside the data
 * directory, so pg_basebackup does not copy them. The instance needs both to start.
 */
async function ensureConfigFiles(dataDir: string): Promise<void> {
  if (!(await exists(join(dataDir, 'postgresql.conf')))) {
    await writeServerFile(join(dataDir, 'postgresql.conf'), '# written by pitr: production keeps its configuration outside the data directory\n');
  }
  if (!(await exists(join(dataDir, 'pg_hba.conf')))) {
    // md5 also accepts SCRAM-stored passwords; loopback only.
    await writeServerFile(join(dataDir, 'pg_hba.conf'), 'host all all 127.0.0.1/32 md5\nhost all all ::1/128 md5\n');
  }
}

/** Stops a recovery instance (if any) and removes its directory: nothing is left behind. */
export async function discardInstance(bin: PostgresBinaries | undefined, dataDir: string, dir: string): Promise<void> {
  if (bin && (await serverPid(dataDir))) await stopServer(bin, dataDir, 'immediate').catch(() => undefined);
  const pid = await serverPid(dataDir);
  if (pid) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await rm(dir, { recursive: true, force: true });
}

/** True when the postgres OS user can create files in dir (every parent must be traversable). */
export async function serverUserCanWrite(dir: string): Promise<boolean> {
  const result = await run('test', ['-w', dir, '-a', '-x', dir], { asServerUser: true });
  return result.code === 0;
}
