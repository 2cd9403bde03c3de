/**
 * `pitr export restore <object> --into <url>`: a full restore of an encrypted export into an
 * empty database, for the day production is gone.
 *
 *   store → sha256 of ciphertext → authenticate + decrypt → sha256 of plaintext → pg_restore
 *
 * Streaming (the default): pg_restore reads the decrypted archive from stdin inside ONE
 * transaction (--single-transaction), and the last chunk is held back until the whole object has
 * been authenticated and matched against the manifest. Any failure kills pg_restore, so the
 * target is left as empty as it was. Nothing plaintext touches the disk.
 *
 * Parallel (`jobs > 1`): pg_restore -j needs a seekable file, so the archive is decrypted and
 * checked completely first into a 0600 file in a 0700 directory, restored, and removed. A
 * failure halfway through a parallel restore leaves a partial database (said in the error).
 *
 * Afterwards every table's row count is compared with the manifest's exact counts.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { connect } from '../db/connect.js';
import { badInput, PitrError } from '../errors.js';
import type { ProgressSink } from '../providers/types.js';
import { redactSecrets, redactUrl, registerSecret } from '../redact.js';
import { ChildSink, HoldLastChunk } from './streams.js';
import { createDecryptStream } from './encryption.js';
import { libpqEnvironment } from '../db/libpq-env.js';
import { findClientProgram } from '../system/client-programs.js';
import { firstRestoreError, watchChild, type ChildExit } from './child-process.js';
import { MiB, objectPath, oneLine, round, throwIfAborted } from './common.js';
import type { ExportManifest } from './manifest.js';
import { HashTap } from './streams.js';
import { assertCountsMatch, countTableRows, listUserTables } from './table-counts.js';
import { exportObjectOf, openExportOf, readExportManifest } from './open.js';
import type { ExportStoreOptions } from './store/index.js';
import { refuseNonEmptyTarget } from './target.js';

/** maintenance_work_mem for the restore sessions together (never lower than the server's). */
const RESTORE_MAINTENANCE_MEMORY = 256 * MiB;

export interface RestoreOptions {
  /** `<location>/<name>` (or its .dump.enc / .manifest.json). */
  object: string;
  /** The empty database to restore into, password included (never shown). */
  intoUrl: string;
  masterKey: Buffer;
  storeOptions?: ExportStoreOptions;
  /** > 1: decrypt to a temporary file and run pg_restore --jobs. Default 1 (stream). */
  jobs?: number;
  /** Restore object owners (ALTER … OWNER TO): the roles must exist in the target. Default off. */
  keepOwners?: boolean;
  /** Restore GRANT/REVOKE: the roles must exist in the target. Default off. */
  keepPrivileges?: boolean;
  /** Where a parallel restore's temporary file goes (default: the OS temp directory). */
  scratchDir?: string;
  onProgress?: ProgressSink;
  signal?: AbortSignal;
}

export interface RestoredTable {
  schema: string;
  name: string;
  expected: number;
  restored: number;
}

export interface RestoreResult {
  ok: true;
  name: string;
  object: string;
  into: string;
  database: string;
  server: string;
  pgRestore: string;
  mode: 'stream' | 'parallel';
  jobs: number;
  owners: boolean;
  privileges: boolean;
  /** What the export holds: the state, its source, when it was made. */
  export: { source: string; target: string | null; createdAt: string; database: string; server: string; pgDump: string; keyId: string };
  bytes: number;
  encryptedBytes: number;
  tables: RestoredTable[];
  rows: number;
  /** Seconds: restore = decrypt + pg_restore; count = the row-count check; total = start to verified counts. */
  seconds: { restore: number; count: number; total: number };
  mbPerSecond: number;
}

export async function restoreExport(options: RestoreOptions): Promise<RestoreResult> {
  const started = performance.now();
  const progress = options.onProgress;
  const jobs = options.jobs ?? 1;
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw badInput('bad_jobs', `--jobs must be a whole number from 1 to 64, got ${String(options.jobs)}`);
  registerUrlPassword(options.intoUrl);
  const into = redactUrl(options.intoUrl);
  const { ref, store } = openExportOf(options.object, options.storeOptions);
  let scratch: string | undefined;
  try {
    progress?.({ phase: 'restore', message: `reading ${ref.manifestKey}` });
    const manifest = await readExportManifest(store, ref, options.masterKey);
    const pgRestore = await findClientProgram('pg_restore', manifest.pgDump.major);

    const facts = await withClient(options.intoUrl, async (c) => {
      await refuseNonEmptyTarget(c, into);
      return (
        await c.query<{ db: string; v: string; mwm: string }>(
          `select current_database() as db, current_setting('server_version') as v, pg_size_bytes(current_setting('maintenance_work_mem'))::text as mwm`,
        )
      ).rows[0]!;
    });
    throwIfAborted(options.signal, 'interrupted: nothing was restored');

    const args = [
      ...(options.keepOwners ? [] : ['--no-owner']),
      ...(options.keepPrivileges ? [] : ['--no-acl']),
      '--exit-on-error',
      '--no-password',
      `--dbname=${conninfoDbname(facts.db)}`,
    ];
    const env = libpqEnvironment(options.intoUrl);
    // Index builds dominate a restore; the server default (64 MB) makes them spill to disk. Raised
    // for pitr's own restore sessions only, never lowered, split over --jobs.
    const perJob = Math.max(RESTORE_MAINTENANCE_MEMORY / jobs, 64 * MiB);
    if (Number(facts.mwm) < perJob) env.PGOPTIONS = `${env.PGOPTIONS ? `${env.PGOPTIONS} ` : ''}-c maintenance_work_mem=${Math.floor(perJob / 1024)}kB`;
    const restoreStarted = performance.now();
    const source = await store.read(ref.dumpKey);
    const cipher = new HashTap();
    const plain = new HashTap();
    reportProgress(cipher, manifest, restoreStarted, progress);
    const checkWhole = () => {
      const d = manifest.dump;
      if (cipher.bytes !== d.encryptedBytes || cipher.hex() !== d.encryptedSha256 || plain.bytes !== d.bytes || plain.hex() !== d.sha256) {
        throw new PitrError(
          'export_tampered',
          `${objectPath(store, ref.dumpKey)} is not the dump its manifest describes (${cipher.bytes} encrypted bytes with sha256 ${cipher.hex().slice(0, 12)}…, the manifest says ${d.encryptedBytes} with ${d.encryptedSha256.slice(0, 12)}…)`,
        );
      }
    };

    let exit: ChildExit;
    if (jobs === 1) {
      const child = spawn(pgRestore.path, ['--single-transaction', ...args], { env, stdio: ['pipe', 'ignore', 'pipe'] });
      const exited = watchChild(child, 'pg_restore');
      const streamError = await runPipeline(options.signal, source, [cipher, createDecryptStream(options.masterKey), plain, new HoldLastChunk(checkWhole)], new ChildSink(child, 'pg_restore'), () => child.kill('SIGKILL'));
      exit = await exited;
      if (streamError !== undefined) throw streamFailure(streamError, options.signal, objectPath(store, ref.dumpKey), exit, 'nothing was restored (the restore runs in one transaction)');
    } else {
      scratch = await mkdtemp(join(options.scratchDir ?? tmpdir(), 'pitr-restore-'));
      const file = join(scratch, `${ref.name}.dump`);
      progress?.({ phase: 'restore', message: `decrypting to a private temporary file for pg_restore --jobs ${jobs}` });
      const streamError = await runPipeline(options.signal, source, [cipher, createDecryptStream(options.masterKey), plain, new HoldLastChunk(checkWhole)], createWriteStream(file, { mode: 0o600 }), () => undefined);
      if (streamError !== undefined) throw streamFailure(streamError, options.signal, objectPath(store, ref.dumpKey), undefined, 'nothing was restored');
      progress?.({ phase: 'restore', message: `pg_restore --jobs ${jobs}` });
      const child = spawn(pgRestore.path, [`--jobs=${jobs}`, ...args, file], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      const onAbort = () => child.kill('SIGTERM');
      options.signal?.addEventListener('abort', onAbort, { once: true });
      exit = await watchChild(child, 'pg_restore');
      options.signal?.removeEventListener('abort', onAbort);
      if (options.signal?.aborted) throw new PitrError('interrupted', `interrupted: the parallel restore into ${into} stopped halfway; the database holds a partial restore`);
    }
    if (exit.error) throw exit.error;
    if (exit.code !== 0) {
      const partial = jobs === 1 ? 'nothing was restored (one transaction)' : 'the database holds a partial restore';
      throw new PitrError('export_restore_failed', `pg_restore into ${into} failed: ${firstRestoreError(exit.stderr)}; ${partial}`, { detail: redactSecrets(exit.stderr) });
    }
    const restoreSeconds = (performance.now() - restoreStarted) / 1000;

    progress?.({ phase: 'restore', message: `restored in ${restoreSeconds.toFixed(1)} s; counting rows` });
    const countStarted = performance.now();
    const tables = await countRestored(options.intoUrl, manifest);
    const countSeconds = (performance.now() - countStarted) / 1000;

    return {
      ok: true,
      name: manifest.name,
      object: exportObjectOf(ref),
      into,
      database: facts.db,
      server: facts.v,
      pgRestore: pgRestore.version,
      mode: jobs === 1 ? 'stream' : 'parallel',
      jobs,
      owners: !!options.keepOwners,
      privileges: !!options.keepPrivileges,
      export: {
        source: manifest.source,
        target: manifest.target,
        createdAt: manifest.createdAt,
        database: manifest.database,
        server: manifest.server.version,
        pgDump: manifest.pgDump.version,
        keyId: manifest.key.id,
      },
      bytes: plain.bytes,
      encryptedBytes: cipher.bytes,
      tables,
      rows: tables.reduce((a, t) => a + t.restored, 0),
      seconds: { restore: round(restoreSeconds), count: round(countSeconds), total: round((performance.now() - started) / 1000) },
      mbPerSecond: round(plain.bytes / MiB / Math.max(restoreSeconds, 0.001), 2),
    };
  } finally {
    store.close();
    if (scratch) await rm(scratch, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Counts every table in one snapshot and compares with the manifest; exit 1 naming the differences. */
export async function countRestored(url: string, manifest: ExportManifest): Promise<RestoredTable[]> {
  const present = await withClient(url, async (c) => {
    await c.query('begin isolation level repeatable read read only');
    try {
      const list = await listUserTables(c);
      const rows = await countTableRows(c, list);
      return list.map((t, i) => ({ ...t, rows: rows[i]! }));
    } finally {
      await c.query('rollback').catch(() => undefined);
    }
  });
  assertCountsMatch(manifest.tables, present);
  const got = new Map(present.map((t) => [`${t.schema}\u0000${t.name}`, t.rows]));
  return manifest.tables.map((t) => ({ schema: t.schema, name: t.name, expected: t.rows, restored: got.get(`${t.schema}\u0000${t.name}`) ?? 0 }));
}

/** Runs the pipeline; returns its error (after `kill`) instead of throwing, so the child's exit can be read first. */
async function runPipeline(signal: AbortSignal | undefined, source: Readable, stages: NodeJS.ReadWriteStream[], sink: Writable, kill: () => void): Promise<unknown> {
  const onAbort = () => {
    kill();
    source.destroy(new PitrError('interrupted', 'interrupted: the restore was stopped'));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await pipeline([source, ...stages, sink]);
    return undefined;
  } catch (err) {
    kill();
    return err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** The first cause: pg_restore's own error when it stopped reading, else the stream's. */
function streamFailure(err: unknown, signal: AbortSignal | undefined, where: string, exit: ChildExit | undefined, after: string): PitrError {
  if (signal?.aborted) return new PitrError('interrupted', `interrupted: ${after}`);
  if (err instanceof PitrError) return new PitrError(err.code, `${err.message}; ${after}`, { exit: err.exitClass, cause: err });
  if (exit?.error) return exit.error;
  if (exit && exit.code !== 0 && exit.signal === null && exit.stderr.trim()) {
    return new PitrError('export_restore_failed', `pg_restore failed: ${firstRestoreError(exit.stderr)}; ${after}`, { detail: redactSecrets(exit.stderr) });
  }
  return new PitrError('export_read_failed', `reading ${where} failed: ${oneLine(err)}; ${after}`, { cause: err });
}

function reportProgress(cipher: HashTap, manifest: ExportManifest, started: number, progress: ProgressSink | undefined): void {
  if (!progress) return;
  let last = 0;
  cipher.onBytes = (bytes) => {
    const now = performance.now();
    if (now - last < 200) return;
    last = now;
    const total = manifest.dump.encryptedBytes;
    const rate = bytes / MiB / Math.max((now - started) / 1000, 0.001);
    progress({ phase: 'restore', message: `restored ${(bytes / MiB).toFixed(1)} of ${(total / MiB).toFixed(1)} MB (${rate.toFixed(1)} MB/s)`, ...(total > 0 && { fraction: Math.min(1, bytes / total) }) });
  };
}

/** `dbname='…'`: a database name given to -d is parsed as a connection string when it holds `=`. */
export function conninfoDbname(db: string): string {
  return `dbname='${db.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  let c: pg.Client;
  try {
    c = await connect(url, { driver: 'pg', applicationName: 'pitr export restore' });
  } catch (err) {
    throw new PitrError('connect_failed', `cannot connect to ${redactUrl(url)}: ${oneLine(err)}`, { cause: err });
  }
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

function registerUrlPassword(url: string): void {
  try {
    const password = new URL(url).password;
    if (password) registerSecret(decodeURIComponent(password));
  } catch {
    throw badInput('bad_database_url', '--into must be a postgres:// URL');
  }
}

