import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PitrError } from '../../errors.js';
import { findPostgresBinaries, type PostgresBinaries } from '../../system/postgres-binaries.js';
import { processAlive, serverPid, stopServer } from '../../system/postgres-server.js';
import type { PointInTime, ResolvedPointInTime } from '../../time/index.js';
import type { CreateBranchOptions, CreateSnapshotOptions, Provider, RecoveryBranch, Snapshot, SourceInfo } from '../types.js';
import type { RetentionPolicy } from '../../retention/gfs.js';
import { listBackups, takeBackup, type BackupInfo, type BackupMethod } from './backups.js';
import { LocalContext, type LocalSettings } from './context.js';
import { discardInstance } from './recovery.js';
import { connectionParts } from './urls.js';
import { checkBranchIdentity, listSealedOff, type SealedOff } from './seal.js';
import { listRestorePoints } from './restore-points.js';
import { applyBackupPrune, planBackupPrune, type BackupPrunePlan } from './prune.js';
import { connectProduction, readProductionFacts } from './production.js';

export type { LocalSettings } from './context.js';

/**
 * Self-hosted Postgres: production is a connection URL, its history a directory of base
 * backups plus a WAL archive (a directory, or any restore_command). A recovery branch is a new
 * Postgres instance restored from the newest backup before the target, on a loopback port.
 *
 * The facade over the parts: context.ts (settings and shared lookups), create-branch.ts,
 * source-status.ts (`pitr status`), snapshots.ts (restore points). The parts a command does
 * not use are not loaded (start-up time is paid by every playbook step).
 */
export class LocalProvider implements Provider {
  readonly kind = 'local' as const;
  private readonly ctx: LocalContext;

  constructor(settings: LocalSettings) {
    this.ctx = new LocalContext(settings);
  }

  async backup(onProgress?: CreateBranchOptions['onProgress'], method?: BackupMethod): Promise<BackupInfo> {
    return takeBackup(this.ctx.requireDatabaseUrl(), this.ctx.requireBackupDir(), onProgress, method);
  }

  async listBackups(): Promise<BackupInfo[]> {
    return listBackups(this.ctx.requireBackupDir());
  }

  async describe(): Promise<SourceInfo> {
    return (await import('./source-status.js')).describeLocalSource(this.ctx);
  }

  async createRecoveryBranch(requested: PointInTime, options: CreateBranchOptions): Promise<RecoveryBranch> {
    return (await import('./create-branch.js')).createRecoveryBranch(this.ctx, requested, options);
  }

  async listRecoveryBranches(): Promise<RecoveryBranch[]> {
    const records = await this.ctx.store.list();
    return Promise.all(records.map(async (r) => this.ctx.toBranch(r, (await serverPid(this.ctx.store.dataDirOf(r.id))) ? 'running' : 'stopped')));
  }

  async getRecoveryBranch(idOrName: string): Promise<RecoveryBranch> {
    const record = await this.ctx.findRecord(idOrName);
    return this.ctx.toBranch(record, (await serverPid(this.ctx.store.dataDirOf(record.id))) ? 'running' : 'stopped');
  }

  async productionUrl(): Promise<string> {
    return this.ctx.requireDatabaseUrl();
  }

  /** Every connection to a branch starts here, so here pitr proves the server on its port is that branch. */
  async connectionString(idOrName: string): Promise<string> {
    const record = await this.ctx.findRecord(idOrName);
    const url = this.ctx.withPassword(record.url);
    await checkBranchIdentity({ name: record.name, port: record.port, dataDir: this.ctx.store.dataDirOf(record.id), url });
    return url;
  }

  /** Subscriptions and pg_cron jobs the branch holds but never runs (see SEALED_SETTINGS). */
  async sealedOff(idOrName: string): Promise<SealedOff> {
    return listSealedOff(await this.connectionString(idOrName));
  }

  async deleteRecoveryBranch(idOrName: string): Promise<RecoveryBranch> {
    const record = await this.ctx.findRecord(idOrName);
    const branch = this.ctx.toBranch(record, 'stopped');
    const dataDir = this.ctx.store.dataDirOf(record.id);
    if (await serverPid(dataDir)) {
      const bin: PostgresBinaries | undefined = await findPostgresBinaries(record.pgMajor).catch(() => undefined);
      if (bin) await stopServer(bin, dataDir, 'fast');
    }
    await discardInstance(undefined, dataDir, this.ctx.store.dirOf(record.id));
    return branch;
  }

  /**
   * Directories of branch creations that died (the CLI was killed mid-restore): no metadata,
   * and the process that was creating them is gone. Their servers are stopped and files removed.
   */
  async removeAbandoned(): Promise<string[]> {
    const removed: string[] = [];
    const ids = await readdir(this.ctx.store.root).catch(() => [] as string[]);
    for (const id of ids) {
      if (await this.ctx.store.read(id)) continue;
      const marker = await readFile(join(this.ctx.store.dirOf(id), 'creating.json'), 'utf8').catch(() => undefined);
      const pid = marker ? (JSON.parse(marker) as { pid?: number }).pid : undefined;
      if (pid && (await processAlive(pid))) continue;
      const dataDir = this.ctx.store.dataDirOf(id);
      const major = Number((await readFile(join(dataDir, 'PG_VERSION'), 'utf8').catch(() => '')).trim());
      const bin = major ? await findPostgresBinaries(major).catch(() => undefined) : undefined;
      await discardInstance(bin, dataDir, this.ctx.store.dirOf(id));
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
    const backupDir = this.ctx.requireBackupDir();
    const restoreCommand = this.ctx.restoreCommand();
    const databaseUrl = this.ctx.settings.offline ? this.ctx.settings.databaseUrl : this.ctx.requireDatabaseUrl();
    const switched = !this.ctx.settings.offline && databaseUrl ? await this.ctx.switchProductionWal(databaseUrl, { ttlMs: 0, ...(onProgress ? { onProgress } : {}) }) : undefined;
    const all = await listBackups(backupDir);
    const backups = switched ? all.filter((b) => b.systemIdentifier === switched.facts.systemIdentifier) : all;
    if (backups.length === 0) throw new PitrError('no_backups', `no base backups of this production in ${backupDir}: run \`pitr backup\` first`);
    const bin = await findPostgresBinaries(backups.at(-1)!.pgMajor);
    const url = databaseUrl ?? `postgresql://postgres@127.0.0.1/${connectionParts(backups.at(-1)!.source).database}`;
    return {
      backups,
      bin,
      restoreCommand,
      url: this.ctx.withPassword(url),
      workDir: this.ctx.settings.workDir,
      timeoutMs: this.ctx.settings.recoveryTimeoutMs,
      walArchive: this.ctx.settings.walArchive,
      switchedAt: switched?.coverage?.at ?? null,
    };
  }

  /**
   * Applies the retention policy to the base backups, then removes the archived WAL that no kept
   * backup needs (only from an archive directory pitr can see; a restore_command archive is
   * pruned by its own tool).
   */
  async pruneBackups(policy: RetentionPolicy, options: { dryRun: boolean; timeZone?: string }): Promise<BackupPrunePlan & { applied: boolean }> {
    const backupDir = this.ctx.requireBackupDir();
    const backups = await listBackups(backupDir);
    let systemIdentifier: string | undefined;
    if (this.ctx.settings.databaseUrl && !this.ctx.settings.offline) {
      const client = await connectProduction(this.ctx.settings.databaseUrl).catch(() => undefined);
      if (client) {
        systemIdentifier = await readProductionFacts(client)
          .then((f) => f.systemIdentifier)
          .finally(() => client.end().catch(() => undefined));
      }
    }
    const plan = await planBackupPrune(backups, await listRestorePoints(backupDir), policy, {
      walArchive: this.ctx.settings.walArchive,
      systemIdentifier,
      ...(options.timeZone && { timeZone: options.timeZone }),
    });
    if (!options.dryRun) await applyBackupPrune(plan, backups, this.ctx.settings.walArchive);
    return { ...plan, applied: !options.dryRun };
  }

  /** What `snapshot:<name>` stands for here: the restore point's LSN, or the bookmarked instant. */
  async resolve(at: PointInTime): Promise<ResolvedPointInTime> {
    return (await import('./snapshots.js')).resolveSnapshotTarget(this.ctx, at);
  }

  /**
   * A named restore point. Now: pg_create_restore_point on production (after a fresh base
   * backup when the newest is older than snapshotBackupAge, so the point never depends on a
   * long replay), then a WAL switch so the point is in the archive. A past instant: a bookmark,
   * checked against the backups first. Either way `backup prune` keeps what it needs.
   */
  async createSnapshot(name: string, options: CreateSnapshotOptions): Promise<Snapshot> {
    return (await import('./snapshots.js')).createSnapshot(this.ctx, name, options);
  }

  async listSnapshots(): Promise<Snapshot[]> {
    return (await import('./snapshots.js')).listSnapshots(this.ctx);
  }

  async getSnapshot(name: string): Promise<Snapshot> {
    return (await import('./snapshots.js')).getSnapshot(this.ctx, name);
  }

  async deleteSnapshot(name: string): Promise<Snapshot> {
    return (await import('./snapshots.js')).deleteSnapshot(this.ctx, name);
  }
}
