import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { badInput, PitrError } from '../../errors.js';
import { redactUrl } from '../../redact.js';
import { silentLogger, type Logger } from '../../log.js';
import { findPostgresBinaries, type PostgresBinaries } from '../../system/postgres-binaries.js';
import { freeLoopbackPort } from '../../system/ports.js';
import { ensurePassableDir, ensureServerDir, isRoot } from '../../system/process.js';
import { processAlive, serverPid, stopServer } from '../../system/postgres-server.js';
import { compareLsn, describePointInTime, formatCompactUtc, formatTarget, parseDuration, parsePointInTime, checkSnapshotName, type PointInTime, type ResolvedPointInTime } from '../../time/index.js';
import { targetString, uniqueName } from '../naming.js';
import type { CreateBranchOptions, CreateSnapshotOptions, Provider, RecoveryBranch, Snapshot, SourceInfo } from '../types.js';
import { listBackups, takeBackup, type BackupInfo, type BackupMethod } from './backups.js';
import { BranchStore, type LocalBranchRecord } from './branch-store.js';
import { archivingProblems, connectProduction, readProductionFacts, switchWalAndWait, type ProductionFacts, type WalSwitch } from './production.js';
import { directoryRestoreCommand, discardInstance, prepareInstance, recoverInstance, serverUserCanWrite, type InstanceRestore } from './recovery.js';
import { branchUrl, connectionParts } from './urls.js';
import { checkBranchIdentity, listSealedOff, type SealedOff } from './seal.js';
import { listRestorePoints, removeRestorePoint, writeRestorePoint, type RestorePoint } from './restore-points.js';
import { applyBackupPrune, planBackupPrune, type BackupPrunePlan } from './prune.js';
import type { RetentionPolicy } from '../../retention/gfs.js';
import { chooseBackupForXid } from './xid-target.js';
import { firstMissingSegment, listArchive, parseSegmentName, segmentFileName, segmentOfLsn } from './wal-archive.js';

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

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new PitrError('interrupted', 'interrupted: nothing was created');
}

/**
 * Self-hosted Postgres: production is a connection URL, its history a directory of base
 * backups plus a WAL archive (a directory, or any restore_command). A recovery branch is a new
 * Postgres instance restored from the newest backup before the target, on a loopback port.
 */
export class LocalProvider implements Provider {
  readonly kind = 'local' as const;
  private readonly store: BranchStore;
  private readonly log: Logger;

  constructor(private readonly settings: LocalSettings) {
    this.store = new BranchStore(settings.workDir);
    this.log = settings.logger ?? silentLogger;
  }

  private requireDatabaseUrl(): string {
    if (!this.settings.databaseUrl) throw badInput('missing_database_url', 'production is not set: pass --database-url or set DATABASE_URL');
    return this.settings.databaseUrl;
  }

  private requireBackupDir(): string {
    if (!this.settings.backupDir) throw badInput('missing_backup_dir', 'no backup directory: pass --backup-dir or set PITR_BACKUP_DIR');
    return this.settings.backupDir;
  }

  private restoreCommand(): string {
    if (this.settings.restoreCommand) return this.settings.restoreCommand;
    if (this.settings.walArchive) return directoryRestoreCommand(this.settings.walArchive);
    throw badInput(
      'missing_wal_archive',
      'no WAL archive: pass --wal-archive <dir> (or PITR_WAL_ARCHIVE), or --restore-command (PITR_RESTORE_COMMAND) for pgBackRest/WAL-G archives',
    );
  }

  async backup(onProgress?: CreateBranchOptions['onProgress'], method?: BackupMethod): Promise<BackupInfo> {
    return takeBackup(this.requireDatabaseUrl(), this.requireBackupDir(), onProgress, method);
  }

  async listBackups(): Promise<BackupInfo[]> {
    return listBackups(this.requireBackupDir());
  }

  async describe(): Promise<SourceInfo> {
    const problems: string[] = [];
    let facts: ProductionFacts | undefined;
    const databaseUrl = this.settings.databaseUrl;
    if (!databaseUrl) problems.push('production is not set (--database-url or DATABASE_URL)');
    else {
      try {
        const client = await connectProduction(databaseUrl);
        try {
          facts = await readProductionFacts(client);
        } finally {
          await client.end().catch(() => undefined);
        }
        problems.push(...archivingProblems(facts));
      } catch (err) {
        if (!(err instanceof PitrError)) throw err;
        problems.push(err.message);
      }
    }
    const allBackups = this.settings.backupDir ? await listBackups(this.settings.backupDir) : [];
    const backups = facts ? allBackups.filter((b) => b.systemIdentifier === facts.systemIdentifier) : allBackups;
    if (!this.settings.backupDir) problems.push('no backup directory (--backup-dir or PITR_BACKUP_DIR)');
    else if (backups.length === 0) problems.push(`no base backups in ${this.settings.backupDir}: run \`pitr backup\``);
    if (!this.settings.walArchive && !this.settings.restoreCommand) problems.push('no WAL archive (--wal-archive or --restore-command)');

    let archiveNewest: string | null = null;
    let archiveDetails: Record<string, unknown> | undefined;
    if (this.settings.walArchive) {
      const listing = await listArchive(this.settings.walArchive);
      archiveNewest = listing.newestArchivedAt;
      const oldest = backups[0];
      const gap = oldest && listing.newestName ? this.findGap(listing.segments, oldest, listing.newestName) : undefined;
      if (gap) problems.push(`WAL segment ${gap} is missing from ${this.settings.walArchive}: nothing after it can be recovered`);
      archiveDetails = { dir: this.settings.walArchive, segments: listing.segments.length, newestSegment: listing.newestName, newestArchivedAt: listing.newestArchivedAt };
    }
    const lastArchived = facts?.archiver.lastArchivedTime ?? null;
    const newest = [archiveNewest, lastArchived].filter((t): t is string => !!t).sort().at(-1) ?? null;
    return {
      provider: 'local',
      source: databaseUrl ? redactUrl(databaseUrl) : '(not set)',
      pgVersion: facts?.serverVersion ?? null,
      window: { oldest: backups[0]?.endedAt ?? null, newest, reachesNow: !!facts && problems.length === 0 },
      problems,
      details: {
        production: facts
          ? {
              reachable: true,
              walLevel: facts.walLevel,
              archiveMode: facts.archiveMode,
              archiveTimeoutSeconds: facts.archiveTimeoutSeconds,
              timeline: facts.timeline,
              currentWal: facts.currentWal,
              systemIdentifier: facts.systemIdentifier,
            }
          : { reachable: false },
        archiver: facts?.archiver ?? null,
        archive: archiveDetails ?? (this.settings.restoreCommand ? { restoreCommand: this.settings.restoreCommand } : null),
        backups: backups.map((b) => ({ id: b.id, endedAt: b.endedAt, endLsn: b.endLsn, bytes: b.bytes, pgVersion: b.pgVersion })),
        otherSystemBackups: allBackups.length - backups.length,
      },
    };
  }

  private findGap(segments: readonly string[], from: BackupInfo, newest: string): string | undefined {
    const start = parseSegmentName(from.startWal, from.walSegmentSize);
    const end = parseSegmentName(newest, from.walSegmentSize);
    if (!start || !end) return undefined;
    const missing = firstMissingSegment(segments, start.number, end.number, from.walSegmentSize);
    return missing === undefined ? undefined : segmentFileName(end.timeline, missing, from.walSegmentSize);
  }

  async createRecoveryBranch(requested: PointInTime, options: CreateBranchOptions): Promise<RecoveryBranch> {
    const started = options.startedAt ?? Date.now();
    const backupDir = this.requireBackupDir();
    const at = await this.resolve(requested);
    const restoreCommand = this.restoreCommand();
    const databaseUrl = this.settings.offline ? this.settings.databaseUrl : this.requireDatabaseUrl();
    // Refuse a target no backup can reach before touching production or the disk.
    let backup = await this.chooseBackup(backupDir, at, undefined);
    let bin = await findPostgresBinaries(backup.pgMajor);

    const sourceUrl = databaseUrl ?? backup.source;
    const id = `lb-${randomBytes(4).toString('hex')}`;
    const name = options.name ?? (await this.uniqueName(this.defaultName(sourceUrl, at)));
    const dir = this.store.dirOf(id);
    const dataDir = this.store.dataDirOf(id);
    const logFile = this.store.logOf(id);
    await ensurePassableDir(this.store.root, this.settings.workDir);
    await ensureServerDir(dir);
    await writeFile(join(dir, 'creating.json'), JSON.stringify({ pid: process.pid, startedAt: new Date(started).toISOString() }), { flag: 'wx' });
    const port = await freeLoopbackPort();
    const url = branchUrl(databaseUrl ?? `postgresql://postgres@127.0.0.1/${connectionParts(backup.source).database}`, port);
    const request = (b: BackupInfo, pg: PostgresBinaries): InstanceRestore => ({
      bin: pg,
      backup: b,
      target: at,
      dataDir,
      logFile,
      port,
      restoreCommand,
      url,
      explainShortArchive: (redoDone: string | null) => this.explainShortArchive(b, redoDone),
      timeoutMs: this.settings.recoveryTimeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    try {
      if (isRoot() && !(await serverUserCanWrite(dir))) {
        throw new PitrError(
          'work_dir_unreachable',
          `the postgres OS user cannot reach the work directory ${this.settings.workDir} (a parent directory is not traversable): set --work-dir or PITR_WORK_DIR to a path such as /var/lib/pitr`,
        );
      }
      // The copy needs nothing from production, so it overlaps the WAL switch and archiver wait.
      const [production, copy] = await Promise.allSettled([
        this.settings.offline || !databaseUrl ? Promise.resolve(undefined) : this.switchProductionWal(databaseUrl, options),
        prepareInstance(request(backup, bin)),
      ]);
      if (production.status === 'rejected') throw production.reason;
      if (copy.status === 'rejected') throw copy.reason;
      throwIfAborted(options.signal);
      const facts = production.value?.facts;
      if (facts && backup.systemIdentifier !== facts.systemIdentifier) {
        // The backup directory also holds another cluster's backups: start over from one of ours.
        backup = await this.chooseBackup(backupDir, at, facts);
        bin = await findPostgresBinaries(backup.pgMajor);
        await rm(dataDir, { recursive: true, force: true });
        await prepareInstance(request(backup, bin));
      }
      this.log.info({ backup: backup.id, endedAt: backup.endedAt, target: describePointInTime(at) }, 'restoring base backup');
      const result = await recoverInstance(request(backup, bin), production.value?.coverage ?? null);
      this.log.info({ id, port, result, seconds: (Date.now() - started) / 1000 }, 'recovery branch promoted');
      const createdAt = new Date();
      const record: LocalBranchRecord = {
        id,
        name,
        source: redactUrl(sourceUrl),
        target: targetString(at),
        createdAt: createdAt.toISOString(),
        expiresAt: new Date(createdAt.getTime() + options.ttlMs).toISOString(),
        port,
        url: connectionParts(url).url,
        backupId: backup.id,
        pgMajor: backup.pgMajor,
        secondsToQueryable: (Date.now() - started) / 1000,
        recoveredTo: result,
        purpose: 'recovery',
      };
      await this.store.write(record);
      await rm(join(dir, 'creating.json'), { force: true });
      return this.toBranch(record, 'running');
    } catch (err) {
      await this.keepFailedLog(id, logFile);
      await discardInstance(bin, dataDir, dir);
      throw err;
    }
  }

  /**
   * Forces production's newest WAL into the archive (so the newest commits are recoverable) and
   * returns its facts and how far the archive provably reaches.
   */
  private async switchProductionWal(databaseUrl: string, options: CreateBranchOptions): Promise<{ facts: ProductionFacts; coverage: WalSwitch | null }> {
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

  private async keepFailedLog(id: string, logFile: string): Promise<void> {
    const logs = join(this.settings.workDir, 'logs');
    await mkdir(logs, { recursive: true }).catch(() => undefined);
    await copyFile(logFile, join(logs, `${id}-failed.log`)).catch(() => undefined);
  }

  private async explainShortArchive(backup: BackupInfo, redoDone: string | null): Promise<string | null> {
    if (!this.settings.walArchive) return null;
    const listing = await listArchive(this.settings.walArchive);
    if (!listing.newestName) return `the WAL archive ${this.settings.walArchive} is empty`;
    const gap = this.findGap(listing.segments, backup, listing.newestName);
    if (!gap) return null;
    const stoppedAt = redoDone ? ` (replay stopped at ${redoDone}, segment ${segmentFileName(backup.timeline, segmentOfLsn(redoDone, backup.walSegmentSize), backup.walSegmentSize)})` : '';
    return `WAL segment ${gap} is missing from the archive ${this.settings.walArchive}: recovery cannot pass it${stoppedAt}`;
  }

  private async chooseBackup(backupDir: string, at: ResolvedPointInTime, facts: ProductionFacts | undefined): Promise<BackupInfo> {
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

  private defaultName(sourceUrl: string, at: ResolvedPointInTime): string {
    const db = connectionParts(sourceUrl).database.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'db';
    const when = at.kind === 'lsn' ? `lsn-${at.lsn.replace('/', '-')}` : at.kind === 'xid' ? `before-xid-${at.xid}` : formatCompactUtc(at.at);
    return `pitr-${db}-${when}`;
  }

  private async uniqueName(base: string): Promise<string> {
    return uniqueName(base, (await this.store.list()).map((r) => r.name));
  }

  private toBranch(record: LocalBranchRecord, state: RecoveryBranch['state']): RecoveryBranch {
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
  private withPassword(url: string): string {
    if (!this.settings.databaseUrl) return url;
    const prod = connectionParts(this.settings.databaseUrl);
    const parsed = new URL(url);
    if (prod.password && decodeURIComponent(parsed.username) === prod.user) parsed.password = encodeURIComponent(prod.password);
    return parsed.toString();
  }

  async listRecoveryBranches(): Promise<RecoveryBranch[]> {
    const records = await this.store.list();
    return Promise.all(records.map(async (r) => this.toBranch(r, (await serverPid(this.store.dataDirOf(r.id))) ? 'running' : 'stopped')));
  }

  async getRecoveryBranch(idOrName: string): Promise<RecoveryBranch> {
    const record = await this.findRecord(idOrName);
    return this.toBranch(record, (await serverPid(this.store.dataDirOf(record.id))) ? 'running' : 'stopped');
  }

  private async findRecord(idOrName: string): Promise<LocalBranchRecord> {
    const records = await this.store.list();
    const record = records.find((r) => r.id === idOrName) ?? records.find((r) => r.name === idOrName);
    if (!record) {
      const known = records.map((r) => r.name).join(', ') || 'none';
      throw badInput('unknown_branch', `no recovery branch "${idOrName}" in ${this.store.root} (known: ${known})`);
    }
    return record;
  }

  async productionUrl(): Promise<string> {
    return this.requireDatabaseUrl();
  }

  /** Every connection to a branch starts here, so here pitr proves the server on its port is that branch. */
  async connectionString(idOrName: string): Promise<string> {
    const record = await this.findRecord(idOrName);
    const url = this.withPassword(record.url);
    await checkBranchIdentity({ name: record.name, port: record.port, dataDir: this.store.dataDirOf(record.id), url });
    return url;
  }

  /** Subscriptions and pg_cron jobs the branch holds but never runs (see SEALED_SETTINGS). */
  async sealedOff(idOrName: string): Promise<SealedOff> {
    return listSealedOff(await this.connectionString(idOrName));
  }

  async deleteRecoveryBranch(idOrName: string): Promise<RecoveryBranch> {
    const record = await this.findRecord(idOrName);
    const branch = this.toBranch(record, 'stopped');
    const dataDir = this.store.dataDirOf(record.id);
    if (await serverPid(dataDir)) {
      const bin: PostgresBinaries | undefined = await findPostgresBinaries(record.pgMajor).catch(() => undefined);
      if (bin) await stopServer(bin, dataDir, 'fast');
    }
    await discardInstance(undefined, dataDir, this.store.dirOf(record.id));
    return branch;
  }

  /**
   * Directories of branch creations that died (the CLI was killed mid-restore): no metadata,
   * and the process that was creating them is gone. Their servers are stopped and files removed.
   */
  async removeAbandoned(): Promise<string[]> {
    const removed: string[] = [];
    const ids = await readdir(this.store.root).catch(() => [] as string[]);
    for (const id of ids) {
      if (await this.store.read(id)) continue;
      const marker = await readFile(join(this.store.dirOf(id), 'creating.json'), 'utf8').catch(() => undefined);
      const pid = marker ? (JSON.parse(marker) as { pid?: number }).pid : undefined;
      if (pid && (await processAlive(pid))) continue;
      const dataDir = this.store.dataDirOf(id);
      const major = Number((await readFile(join(dataDir, 'PG_VERSION'), 'utf8').catch(() => '')).trim());
      const bin = major ? await findPostgresBinaries(major).catch(() => undefined) : undefined;
      await discardInstance(bin, dataDir, this.store.dirOf(id));
      removed.push(id);
    }
    return removed;
  }

  /**
   * What `pitr when` needs to read past states: production's backups, the archive, a binary
   * set, and (production reachable) a WAL switch so the newest commits are in the archive.
   */
  async probeSetup(onProgress?: CreateBranchOptions['onProgress']): Promise<{
    backups: BackupInfo[];
    bin: PostgresBinaries;
    restoreCommand: string;
    url: string;
    workDir: string;
    timeoutMs: number;
    walArchive: string | undefined;
    switchedAt: string | null;
  }> {
    const backupDir = this.requireBackupDir();
    const restoreCommand = this.restoreCommand();
    const databaseUrl = this.settings.offline ? this.settings.databaseUrl : this.requireDatabaseUrl();
    const switched = !this.settings.offline && databaseUrl ? await this.switchProductionWal(databaseUrl, { ttlMs: 0, ...(onProgress ? { onProgress } : {}) }) : undefined;
    const all = await listBackups(backupDir);
    const backups = switched ? all.filter((b) => b.systemIdentifier === switched.facts.systemIdentifier) : all;
    if (backups.length === 0) throw new PitrError('no_backups', `no base backups of this production in ${backupDir}: run \`pitr backup\` first`);
    const bin = await findPostgresBinaries(backups.at(-1)!.pgMajor);
    const url = databaseUrl ?? `postgresql://postgres@127.0.0.1/${connectionParts(backups.at(-1)!.source).database}`;
    return {
      backups,
      bin,
      restoreCommand,
      url: this.withPassword(url),
      workDir: this.settings.workDir,
      timeoutMs: this.settings.recoveryTimeoutMs,
      walArchive: this.settings.walArchive,
      switchedAt: switched?.coverage?.at ?? null,
    };
  }

  /** What `snapshot:<name>` stands for here: the restore point's LSN, or the bookmarked instant. */
  async resolve(at: PointInTime): Promise<ResolvedPointInTime> {
    if (at.kind !== 'snapshot') return at;
    const point = await this.findRestorePoint(at.name);
    if (point.lsn) return { kind: 'lsn', lsn: point.lsn, input: at.input };
    const stored = parsePointInTime(point.at!, {});
    if (stored.kind === 'snapshot') throw new PitrError('bad_restore_point', `restore point ${point.name} is damaged: it names no time or LSN`);
    return stored;
  }

  private async findRestorePoint(name: string): Promise<RestorePoint> {
    const points = await listRestorePoints(this.requireBackupDir());
    const point = points.find((p) => p.name === name);
    if (!point) {
      const known = points.map((p) => p.name).join(', ') || 'none';
      throw badInput('unknown_snapshot', `no snapshot "${name}" in ${this.requireBackupDir()} (known: ${known})`);
    }
    return point;
  }

  private toSnapshot(point: RestorePoint): Snapshot {
    return {
      name: point.name,
      id: point.name,
      provider: 'local',
      method: point.method,
      at: point.at,
      lsn: point.lsn,
      createdAt: point.createdAt,
      details: { backupId: point.backupId, archived: point.archived },
    };
  }

  /**
   * A named restore point. Now: pg_create_restore_point on production (after a fresh base
   * backup when the newest is older than snapshotBackupAge, so the point never depends on a
   * long replay), then a WAL switch so the point is in the archive. A past instant: a bookmark,
   * checked against the backups first. Either way `backup prune` keeps what it needs.
   */
  async createSnapshot(name: string, options: CreateSnapshotOptions): Promise<Snapshot> {
    const backupDir = this.requireBackupDir();
    checkSnapshotName(name);
    if ((await listRestorePoints(backupDir)).some((p) => p.name === name)) throw badInput('snapshot_exists', `a snapshot named ${name} already exists`);
    const createdAt = new Date().toISOString();
    if (options.at) {
      if (options.at.kind === 'snapshot') throw badInput('bad_time', 'a snapshot of a snapshot is the same snapshot: give a time or an LSN');
      if (options.at.kind === 'xid') throw badInput('bad_time', `a snapshot keeps a time or an LSN, not a transaction id (${options.at.input}); branch from it instead: pitr --at ${options.at.input}`);
      const backup = await this.chooseBackup(backupDir, options.at, undefined);
      const point: RestorePoint = {
        name,
        method: 'bookmark',
        at: options.at.kind === 'time' ? formatTarget(options.at) : null,
        lsn: options.at.kind === 'lsn' ? options.at.lsn : null,
        createdAt,
        backupId: backup.id,
        systemIdentifier: backup.systemIdentifier,
        archived: true,
      };
      await writeRestorePoint(backupDir, point);
      return this.toSnapshot(point);
    }
    const databaseUrl = this.requireDatabaseUrl();
    const maxAge = this.settings.snapshotBackupAgeMs ?? parseDuration('24h');
    let backup = (await listBackups(backupDir)).at(-1);
    if (!backup || Date.now() - new Date(backup.endedAt).getTime() > maxAge) {
      options.onProgress?.({ phase: 'backup', message: backup ? `newest base backup is from ${backup.endedAt}: taking a fresh one first` : 'no base backup yet: taking one first' });
      backup = await takeBackup(databaseUrl, backupDir, options.onProgress);
    }
    const client = await connectProduction(databaseUrl);
    try {
      const facts = await readProductionFacts(client);
      if (facts.walLevel === 'minimal') throw new PitrError('wal_level_minimal', 'production runs with wal_level = minimal: restore points need wal_level = replica or logical');
      let method: RestorePoint['method'] = 'restore-point';
      let row: { lsn: string; at: string };
      try {
        // to_char keeps the microseconds a JS Date would drop.
        row = (await client.query(`select pg_create_restore_point($1)::text as lsn, to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at`, [name])).rows[0];
      } catch (err) {
        if ((err as { code?: string }).code !== '42501') throw err;
        // Not allowed to write a named WAL record: the current WAL position marks the same point.
        method = 'bookmark';
        row = (await client.query(`select pg_current_wal_lsn()::text as lsn, to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at`)).rows[0];
      }
      const archived = await switchWalAndWait(client, this.settings.archiveWaitMs)
        .then((w) => w.archived)
        .catch(() => false);
      options.onProgress?.({ phase: 'snapshot', message: archived ? `restore point ${name} at LSN ${row.lsn} is in the WAL archive` : `restore point ${name} at LSN ${row.lsn} is not in the WAL archive yet` });
      const point: RestorePoint = { name, method, at: row.at, lsn: row.lsn, createdAt, backupId: backup.id, systemIdentifier: facts.systemIdentifier, archived };
      await writeRestorePoint(backupDir, point);
      return this.toSnapshot(point);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async listSnapshots(): Promise<Snapshot[]> {
    return (await listRestorePoints(this.requireBackupDir())).map((p) => this.toSnapshot(p));
  }

  async getSnapshot(name: string): Promise<Snapshot> {
    return this.toSnapshot(await this.findRestorePoint(name));
  }

  async deleteSnapshot(name: string): Promise<Snapshot> {
    const point = await this.findRestorePoint(name);
    await removeRestorePoint(this.requireBackupDir(), name);
    return this.toSnapshot(point);
  }

  /**
   * Applies the retention policy to the base backups, then removes the archived WAL that no kept
   * backup needs (only from an archive directory pitr can see; a restore_command archive is
   * pruned by its own tool).
   */
  async pruneBackups(policy: RetentionPolicy, options: { dryRun: boolean; timeZone?: string }): Promise<BackupPrunePlan & { applied: boolean }> {
    const backupDir = this.requireBackupDir();
    const backups = await listBackups(backupDir);
    let systemIdentifier: string | undefined;
    if (this.settings.databaseUrl && !this.settings.offline) {
      const client = await connectProduction(this.settings.databaseUrl).catch(() => undefined);
      if (client) {
        systemIdentifier = await readProductionFacts(client)
          .then((f) => f.systemIdentifier)
          .finally(() => client.end().catch(() => undefined));
      }
    }
    const plan = await planBackupPrune(backups, await listRestorePoints(backupDir), policy, {
      walArchive: this.settings.walArchive,
      systemIdentifier,
      ...(options.timeZone && { timeZone: options.timeZone }),
    });
    if (!options.dryRun) await applyBackupPrune(plan, backups, this.settings.walArchive);
    return { ...plan, applied: !options.dryRun };
  }
}
