import { mkdir, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { badInput, PitrError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import { findPostgresBinaries } from '../../system/postgres-binaries.js';
import { compareLsn, describePointInTime, type ResolvedPointInTime } from '../../time/index.js';
import type { CreateBranchOptions, RecoveryBranch } from '../types.js';
import { listBackups, type BackupInfo } from './backups.js';
import { BranchStore, type LocalBranchRecord } from './branch-store.js';
import { connectProduction, readProductionFacts, switchWalAndWait, type ProductionFacts, type WalSwitch } from './production.js';
import { directoryRestoreCommand } from './recovery.js';
import { connectionParts } from './urls.js';
import { chooseBackupForXid } from './xid-target.js';
import { firstMissingSegment, parseSegmentName, segmentFileName } from './wal-archive.js';

export interface LocalSettings {
  databaseUrl?: string;
  backupDir?: string;
  walArchive?: string;
  restoreCommand?: string;
  workDir: string;
  /** How long to wait for the archiver to archive the segment pitr switched to. */
  archiveWaitMs: number;
  /** Restore from backups and archive alone, without touching production. */
  offline?: boolean;
  recoveryTimeoutMs: number;
  /** A snapshot takes a fresh base backup first when the newest is older than this (default 24 h). */
  snapshotBackupAgeMs?: number;
  logger?: Logger;
}

/**
 * What every part of the local provider shares: its settings, the branch store, and the
 * lookups they all make (which backup reaches a target, which branch a name means, production's
 * WAL switch). LocalProvider (index.ts) is the facade over the parts.
 */
export class LocalContext {
  readonly store: BranchStore;
  readonly log: Logger;

  constructor(readonly settings: LocalSettings) {
    this.store = new BranchStore(settings.workDir);
    this.log = settings.logger ?? silentLogger;
  }

  requireDatabaseUrl(): string {
    if (!this.settings.databaseUrl) throw badInput('missing_database_url', 'production is not set: pass --database-url or set DATABASE_URL');
    return this.settings.databaseUrl;
  }

  requireBackupDir(): string {
    if (!this.settings.backupDir) throw badInput('missing_backup_dir', 'no backup directory: pass --backup-dir or set PITR_BACKUP_DIR');
    return this.settings.backupDir;
  }

  restoreCommand(): string {
    if (this.settings.restoreCommand) return this.settings.restoreCommand;
    if (this.settings.walArchive) return directoryRestoreCommand(this.settings.walArchive);
    throw badInput(
      'missing_wal_archive',
      'no WAL archive: pass --wal-archive <dir> (or PITR_WAL_ARCHIVE), or --restore-command (PITR_RESTORE_COMMAND) for pgBackRest/WAL-G archives',
    );
  }

  async findRecord(idOrName: string): Promise<LocalBranchRecord> {
    const records = await this.store.list();
    const record = records.find((r) => r.id === idOrName) ?? records.find((r) => r.name === idOrName);
    if (!record) {
      const known = records.map((r) => r.name).join(', ') || 'none';
      throw badInput('unknown_branch', `no recovery branch "${idOrName}" in ${this.store.root} (known: ${known})`);
    }
    return record;
  }

  toBranch(record: LocalBranchRecord, state: RecoveryBranch['state']): RecoveryBranch {
    return {
      id: record.id,
      name: record.name,
      provider: 'local',
      source: record.source,
      target: record.target,
      connectionUrl: this.withPassword(record.url),
      createdAt: record.createdAt,
      expiresAt: record.expiresAt,
      secondsToQueryable: record.secondsToQueryable,
      state,
      details: { port: record.port, backupId: record.backupId, recoveredTo: record.recoveredTo, dataDir: this.store.dataDirOf(record.id) },
    };
  }

  /** The instance is a copy of production, so production's password opens it too. */
  withPassword(url: string): string {
    if (!this.settings.databaseUrl) return url;
    const prod = connectionParts(this.settings.databaseUrl);
    const parsed = new URL(url);
    if (prod.password && decodeURIComponent(parsed.username) === prod.user) parsed.password = encodeURIComponent(prod.password);
    return parsed.toString();
  }

  async chooseBackup(backupDir: string, at: ResolvedPointInTime, facts: ProductionFacts | undefined): Promise<BackupInfo> {
    const all = await listBackups(backupDir);
    const backups = facts ? all.filter((b) => b.systemIdentifier === facts.systemIdentifier) : all;
    if (backups.length === 0) {
      const other = all.length ? ` (${all.length} belong to another database system)` : '';
      throw new PitrError('no_backups', `no base backups of this production in ${backupDir}${other}: run \`pitr backup\` first`);
    }
    if (at.kind === 'xid') return chooseBackupForXid(await findPostgresBinaries(backups.at(-1)!.pgMajor), backups, at.xid);
    const usable = backups.filter((b) => (at.kind === 'lsn' ? compareLsn(b.endLsn, at.lsn) <= 0 : new Date(b.endedAt).getTime() <= at.at.getTime()));
    const chosen = usable.at(-1);
    if (!chosen) {
      const oldest = backups[0]!;
      const limit = at.kind === 'lsn' ? `LSN ${oldest.endLsn}` : oldest.endedAt;
      throw new PitrError(
        'target_before_backups',
        `${describePointInTime(at)} is before the oldest base backup (consistent from ${limit}); recoverable: ${limit} → the end of the WAL archive`,
        { exit: 'usage' },
      );
    }
    return chosen;
  }

  findGap(segments: readonly string[], from: BackupInfo, newest: string): string | undefined {
    const start = parseSegmentName(from.startWal, from.walSegmentSize);
    const end = parseSegmentName(newest, from.walSegmentSize);
    if (!start || !end) return undefined;
    const missing = firstMissingSegment(segments, start.number, end.number, from.walSegmentSize);
    return missing === undefined ? undefined : segmentFileName(end.timeline, missing, from.walSegmentSize);
  }

  /**
   * Forces production's newest WAL into the archive (so the newest commits are recoverable) and
   * returns its facts and how far the archive provably reaches.
   */
  async switchProductionWal(databaseUrl: string, options: CreateBranchOptions): Promise<{ facts: ProductionFacts; coverage: WalSwitch | null }> {
    options.onProgress?.({ phase: 'archive', message: 'switching WAL on production so the newest commits are archived' });
    const client = await connectProduction(databaseUrl).catch((err: unknown) => {
      if (err instanceof PitrError) {
        throw new PitrError(err.code, `${err.message}; pass --offline to recover from the backups and WAL archive alone`, { cause: err });
      }
      throw err;
    });
    try {
      const facts = await readProductionFacts(client);
      this.log.debug({ version: facts.serverVersion, timeline: facts.timeline, archiver: facts.archiver }, 'production');
      const coverage = await switchWalAndWait(client, this.settings.archiveWaitMs, options.signal).catch((err: unknown) => {
        // Without pg_switch_wal (no permission) the archive may lag; recovery still runs and says so if it falls short.
        this.log.warn({ err: (err as Error).message }, 'could not switch WAL on production');
        return null;
      });
      this.log.debug({ coverage }, 'WAL switch');
      if (coverage && !coverage.archived) {
        options.onProgress?.({ phase: 'archive', message: `segment ${coverage.segment} was not archived within the archive wait; using what the archive has` });
      }
      return { facts, coverage };
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async keepFailedLog(id: string, logFile: string): Promise<void> {
    const logs = join(this.settings.workDir, 'logs');
    await mkdir(logs, { recursive: true }).catch(() => undefined);
    await copyFile(logFile, join(logs, `${id}-failed.log`)).catch(() => undefined);
  }
}
