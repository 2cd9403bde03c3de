/**
 * Exports as recovery branches (`export:<object>`): the export is restored into a throw-away
 * local instance and registered like any pitr branch, so `preview`, `diff` and `recover` use it
 * exactly as they use a PITR branch: for incidents older than every history window.
 *
 * Branches live in `<workDir>/export-branches/<id>/`: `branch.json` (this record, no secret),
 * `password` (0600), `data/` and `server.log`. They are merged into whatever provider is in use
 * (withExportBranches), so `pitr branches` lists them and `branches delete|prune` remove them
 * with Neon as well as with the local provider.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { badInput, PitrError } from '../errors.js';
import { serverUserCanWrite } from '../providers/local/recovery.js';
import { ensurePassableDir, ensureServerDir, isRoot } from '../system/process.js';
import type { CreateBranchOptions, Provider, RecoveryBranch } from '../providers/types.js';
import { processAlive, serverPid } from '../system/postgres-server.js';
import { findPostgresBinaries } from '../system/postgres-binaries.js';
import { createBranchInstance, instanceUrl, stopBranchInstance } from './branch-instance.js';
import { exportObjectOf, openExportOf, readExportManifest } from './open.js';
import { restoreExport } from './restore.js';
import type { ExportStoreOptions } from './store/index.js';

export const EXPORT_PREFIX = 'export:';

const recordSchema = z.object({
  id: z.string().regex(/^eb-[0-9a-f]{8}$/),
  name: z.string(),
  /** `<location>/<name>` of the export. */
  object: z.string(),
  exportName: z.string(),
  source: z.string(),
  /** What production state the branch holds: the export's target, else when it was made. */
  target: z.string(),
  exportedAt: z.string(),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  port: z.number().int(),
  database: z.string(),
  pgMajor: z.number().int(),
  secondsToQueryable: z.number().nullable(),
  rows: z.number().int(),
  purpose: z.literal('export'),
});
export type ExportBranchRecord = z.infer<typeof recordSchema>;

export interface ExportBranchSettings {
  workDir: string;
  /** Loaded only when a branch is created (listing and deleting need no key). */
  masterKey: () => Buffer;
  storeOptions?: ExportStoreOptions;
  /** pg_restore --jobs for the restore (default 1: streamed, nothing plaintext on disk). */
  jobs?: number;
}

/** `export:<object>` → `<object>`, or undefined when the text is not an export reference. */
export function exportReference(text: string | undefined): string | undefined {
  if (text === undefined || !text.startsWith(EXPORT_PREFIX)) return undefined;
  const object = text.slice(EXPORT_PREFIX.length).trim();
  if (!object) throw badInput('bad_export_reference', 'export: needs an export, e.g. export:/backups/exports/pitr-app-20261125T140300Z or export:s3://bucket/prefix/<name>');
  return object;
}

export { describeExportBranch } from '../providers/branch-target.js';

export class ExportBranches {
  constructor(private readonly settings: ExportBranchSettings) {}

  get root(): string {
    return join(this.settings.workDir, 'export-branches');
  }

  private dirOf(id: string): string {
    if (!/^eb-[0-9a-f]{8}$/.test(id)) throw badInput('bad_branch_id', `"${id}" is not an export branch id`);
    return join(this.root, id);
  }

  async records(): Promise<ExportBranchRecord[]> {
    const ids = (await readdir(this.root).catch(() => [] as string[])).filter((id) => /^eb-[0-9a-f]{8}$/.test(id));
    const out: ExportBranchRecord[] = [];
    for (const id of ids) {
      const text = await readFile(join(this.root, id, 'branch.json'), 'utf8').catch(() => undefined);
      if (!text) continue;
      const parsed = recordSchema.safeParse(JSON.parse(text));
      if (parsed.success) out.push(parsed.data);
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async list(): Promise<RecoveryBranch[]> {
    return Promise.all((await this.records()).map((r) => this.toBranch(r)));
  }

  async find(idOrName: string): Promise<RecoveryBranch | undefined> {
    const records = await this.records();
    const r = records.find((x) => x.id === idOrName) ?? records.find((x) => x.name === idOrName);
    return r ? this.toBranch(r) : undefined;
  }

  /** A running branch of this export when there is one (restoring again would take as long as the first time). */
  async findOrCreate(object: string, options: CreateBranchOptions): Promise<RecoveryBranch> {
    const wanted = exportObjectOf(openExportOf(object, this.settings.storeOptions).ref);
    const now = Date.now();
    for (const r of (await this.records()).reverse()) {
      if (r.object !== wanted || (r.expiresAt && new Date(r.expiresAt).getTime() <= now)) continue;
      const b = await this.toBranch(r);
      if (b.state === 'running') return b;
    }
    return this.create(object, options);
  }

  async create(object: string, options: CreateBranchOptions): Promise<RecoveryBranch> {
    const started = options.startedAt ?? Date.now();
    const masterKey = this.settings.masterKey();
    const { ref, store } = openExportOf(object, this.settings.storeOptions);
    let manifest;
    try {
      manifest = await readExportManifest(store, ref, masterKey);
    } finally {
      store.close();
    }
    const id = `eb-${randomBytes(4).toString('hex')}`;
    const dir = this.dirOf(id);
    const name = options.name ?? (await this.uniqueName(`export-${manifest.name}`.slice(0, 120)));
    const target = manifest.target && !manifest.target.startsWith('snapshot:') ? manifest.target : (manifest.resolvedTarget ?? manifest.createdAt);
    // The postgres OS user must traverse these (pitr may run as root, under umask 077).
    await ensurePassableDir(this.root, this.settings.workDir);
    await ensureServerDir(dir, 0o755);
    if (isRoot() && !(await serverUserCanWrite(dir))) {
      await rm(dir, { recursive: true, force: true });
      throw new PitrError('work_dir_unreachable', `the postgres OS user cannot reach the work directory ${this.settings.workDir} (a parent directory is not traversable): set --work-dir or PITR_WORK_DIR to a path such as /var/lib/pitr`);
    }
    await writeFile(join(dir, 'creating.json'), JSON.stringify({ pid: process.pid, startedAt: new Date(started).toISOString() }));
    const database = manifest.database || 'restored';
    let instance: Awaited<ReturnType<typeof createBranchInstance>> | undefined;
    try {
      options.onProgress?.({ phase: 'branch', message: `starting a local instance for export ${manifest.name}` });
      instance = await createBranchInstance(dir, Math.floor(manifest.server.versionNum / 10000), database);
      const restored = await restoreExport({
        object: exportObjectOf(ref),
        intoUrl: instance.urlFor(database),
        masterKey,
        ...(this.settings.storeOptions && { storeOptions: this.settings.storeOptions }),
        ...(this.settings.jobs !== undefined && { jobs: this.settings.jobs }),
        ...(options.signal && { signal: options.signal }),
        ...(options.onProgress && { onProgress: options.onProgress }),
      });
      const createdAt = new Date();
      const record: ExportBranchRecord = {
        id,
        name,
        object: exportObjectOf(ref),
        exportName: manifest.name,
        source: manifest.source,
        target,
        exportedAt: manifest.createdAt,
        createdAt: createdAt.toISOString(),
        expiresAt: new Date(createdAt.getTime() + options.ttlMs).toISOString(),
        port: instance.port,
        database,
        pgMajor: instance.bin.major,
        secondsToQueryable: (Date.now() - started) / 1000,
        rows: restored.rows,
        purpose: 'export',
      };
      const tmp = join(dir, 'branch.json.tmp');
      await writeFile(tmp, JSON.stringify(record, null, 2) + '\n');
      await rename(tmp, join(dir, 'branch.json'));
      await rm(join(dir, 'creating.json'), { force: true });
      return this.toBranch(record);
    } catch (err) {
      await stopBranchInstance(instance?.bin, join(dir, 'data'), 'immediate');
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
  }

  async delete(idOrName: string): Promise<RecoveryBranch | undefined> {
    const records = await this.records();
    const r = records.find((x) => x.id === idOrName) ?? records.find((x) => x.name === idOrName);
    if (!r) return undefined;
    const branch = await this.toBranch(r);
    const dataDir = join(this.dirOf(r.id), 'data');
    if (await serverPid(dataDir)) await stopBranchInstance(await findPostgresBinaries(r.pgMajor).catch(() => findPostgresBinaries()), dataDir, 'fast');
    await rm(this.dirOf(r.id), { recursive: true, force: true });
    return { ...branch, state: 'stopped' };
  }

  /**
   * Directories of export-branch creations that died (pitr killed mid-restore): no branch.json and
   * the creating process gone. Their servers are stopped and their files removed.
   */
  async removeAbandoned(): Promise<string[]> {
    const removed: string[] = [];
    for (const id of (await readdir(this.root).catch(() => [] as string[])).filter((x) => /^eb-[0-9a-f]{8}$/.test(x))) {
      const dir = this.dirOf(id);
      if (await readFile(join(dir, 'branch.json'), 'utf8').catch(() => undefined)) continue;
      const marker = await readFile(join(dir, 'creating.json'), 'utf8').catch(() => undefined);
      const pid = marker ? (JSON.parse(marker) as { pid?: number }).pid : undefined;
      if (pid && (await processAlive(pid))) continue;
      if (await serverPid(join(dir, 'data'))) await stopBranchInstance(await findPostgresBinaries().catch(() => undefined), join(dir, 'data'), 'immediate');
      await rm(dir, { recursive: true, force: true });
      removed.push(id);
    }
    return removed;
  }

  private async uniqueName(base: string): Promise<string> {
    const names = new Set((await this.records()).map((r) => r.name));
    let name = base;
    for (let n = 2; names.has(name); n++) name = `${base}-${n}`;
    return name;
  }

  private async toBranch(r: ExportBranchRecord): Promise<RecoveryBranch> {
    const dir = this.dirOf(r.id);
    const password = (await readFile(join(dir, 'password'), 'utf8').catch(() => '')).trim();
    const running = !!(await serverPid(join(dir, 'data')));
    return {
      id: r.id,
      name: r.name,
      provider: 'local',
      source: `export ${r.exportName} of ${r.source}`,
      target: r.target,
      connectionUrl: instanceUrl(r.port, r.database, password || undefined),
      createdAt: r.createdAt,
      expiresAt: r.expiresAt,
      secondsToQueryable: r.secondsToQueryable,
      state: running ? 'running' : 'stopped',
      details: { purpose: 'export', export: r.object, exportName: r.exportName, exportedAt: r.exportedAt, port: r.port, rows: r.rows, dataDir: join(dir, 'data') },
    };
  }
}

/**
 * The provider with export branches merged in: listed with its own, found by id or name,
 * deleted, and given connection strings. Everything else is the provider's.
 */
export function withExportBranches(inner: Provider, branches: ExportBranches): Provider {
  const overrides: Partial<Provider> = {
    async listRecoveryBranches() {
      const [own, exported] = await Promise.all([inner.listRecoveryBranches(), branches.list()]);
      return [...own, ...exported].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    },
    async getRecoveryBranch(idOrName) {
      return (await branches.find(idOrName)) ?? inner.getRecoveryBranch(idOrName);
    },
    async deleteRecoveryBranch(idOrName) {
      return (await branches.delete(idOrName)) ?? inner.deleteRecoveryBranch(idOrName);
    },
    async connectionString(idOrName) {
      return (await branches.find(idOrName))?.connectionUrl ?? inner.connectionString(idOrName);
    },
  };
  return new Proxy(inner, {
    get(target, prop) {
      if (typeof prop === 'string' && prop in overrides) return overrides[prop as keyof Provider];
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
