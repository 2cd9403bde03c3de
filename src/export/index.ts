/**
 * Encrypted exports: `pg_dump -Fc` of a chosen state of production, streamed through the
 * chunked AES-256-GCM format (./encryption.ts) into a directory or an S3 prefix (./store.ts),
 * with an authenticated manifest (./manifest.ts); and their verification, up to a full restore
 * into a throw-away cluster with per-table row counts compared to the manifest.
 *
 *   pg_dump stdout → sha256/bytes of the plaintext → encrypt → sha256/bytes of the ciphertext → store
 *
 * Consistency: pitr opens a REPEATABLE READ transaction on the source, exports its snapshot and
 * runs `pg_dump --snapshot=<id>`, so the dump and the manifest's exact row counts (counted in that
 * transaction while pg_dump runs) describe one and the same state. The transaction stays open
 * until pg_dump has finished.
 *
 * Secrets: pg_dump and pg_restore get their connection in libpq environment variables, never on
 * the command line (which anyone can read in `ps`). Memory stays flat whatever the dump's size:
 * every stage streams, at most one encryption chunk (1 MiB) is held per direction, plus the
 * store's upload buffers for S3.
 *
 * No console output here: progress goes to `onProgress`, failures are one-line PitrErrors.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, chmod, mkdtemp, readdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Transform, Writable, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { connect } from '../db/connect.js';
import { qualifiedName, quoteIdent, quoteLiteral } from '../db/sql.js';
import { badInput, PitrError } from '../errors.js';
import type { ProgressSink, Provider } from '../providers/types.js';
import { redactSecrets, redactUrl, registerSecret } from '../redact.js';
import { createLocalCluster, type LocalCluster } from '../system/local-cluster.js';
import { ensureServerDir, lastMeaningfulLine, minimalEnvironment, run } from '../system/process.js';
import { formatCompactUtc, type PointInTime } from '../time/index.js';
import { createDecryptStream, createEncryptStream, DEFAULT_CHUNK_BYTES } from './encryption.js';
import {
  DUMP_SUFFIX,
  keyId,
  MANIFEST_FORMAT,
  MANIFEST_SUFFIX,
  MANIFEST_VERSION,
  openManifest,
  signManifest,
  type ExportManifest,
  type ManifestTable,
} from './manifest.js';
import { checkManifestNamesObject } from './open.js';
import { assertKey, openExportStore, splitObjectUrl, type ExportStore, type ExportStoreOptions } from './store.js';

export type { ExportManifest, ManifestTable } from './manifest.js';
export { DUMP_SUFFIX, MANIFEST_SUFFIX } from './manifest.js';

const { version: TOOL_VERSION } = createRequire(import.meta.url)('../../package.json') as { version: string };
const MiB = 1024 * 1024;
const PROGRESS_EVERY_MS = 200;
/** Export names: what file names and S3 keys both take without quoting. */
export const EXPORT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$/;

// ---------------------------------------------------------------------------------------------
// Public API

export interface ExportOptions {
  /** Connection URL of the database to dump, password included (never shown). */
  sourceUrl: string;
  /** The source for people and the manifest; redacted again here to be sure. */
  sourceLabel: string;
  /** The state exported: an ISO instant, `lsn:X/Y`, `snapshot:<name>`, or null for the current state. */
  target: string | null;
  /** What `target` was resolved to when that differs (a snapshot's LSN), else omitted. */
  resolvedTarget?: string | null;
  /** A directory or `s3://bucket/prefix`. */
  location: string;
  /** Default `pitr-<database>-<yyyymmddThhmmssZ>`. */
  name?: string;
  masterKey: Buffer;
  storeOptions?: ExportStoreOptions;
  chunkBytes?: number;
  onProgress?: ProgressSink;
  signal?: AbortSignal;
}

export interface ExportResult {
  name: string;
  location: string;
  /** Printable path or URL of the encrypted dump and of the manifest. */
  dumpObject: string;
  manifestObject: string;
  source: string;
  database: string;
  target: string | null;
  /** Dump and row counts come from one exported snapshot. */
  consistent: boolean;
  server: string;
  pgDump: string;
  bytes: number;
  encryptedBytes: number;
  sha256: string;
  encryptedSha256: string;
  tables: number;
  rows: number;
  /** Seconds from start to manifest written; dumpSeconds is the pg_dump stream alone. */
  seconds: number;
  dumpSeconds: number;
  /** MiB/s of pg_dump output over dumpSeconds. */
  mbPerSecond: number;
  keyId: string;
  warnings: string[];
  manifest: ExportManifest;
}

export interface VerifyOptions {
  /** Path or s3:// URL of `<name>.dump.enc` or `<name>.manifest.json` (or `<location>/<name>`). */
  object: string;
  masterKey: Buffer;
  storeOptions?: ExportStoreOptions;
  /** Also restore into a throw-away cluster and compare per-table row counts with the manifest. */
  restore: boolean;
  /** Where the throw-away cluster lives (default: the OS temp directory). */
  scratchDir?: string;
  onProgress?: ProgressSink;
  signal?: AbortSignal;
}

export interface VerifyResult {
  ok: true;
  name: string;
  dumpObject: string;
  manifestObject: string;
  manifest: ExportManifest;
  /** Every chunk authenticated, sizes and SHA-256 of both forms equal to the manifest. */
  authenticated: { encryptedBytes: number; bytes: number; sha256: string; seconds: number; mbPerSecond: number };
  /** `pg_restore --list` of the decrypted archive. */
  list: { entries: number; tableData: number };
  restore: null | {
    seconds: number;
    database: string;
    server: string;
    tables: number;
    rows: number;
  };
  seconds: number;
}

export interface ProviderExportOptions extends Omit<ExportOptions, 'sourceUrl' | 'sourceLabel' | 'target' | 'resolvedTarget'> {
  provider: Provider;
  /** A pitr branch id or name, or any postgres:// URL. */
  branch?: string;
  /** Export production as it was then, through a temporary recovery branch (deleted afterwards). */
  at?: PointInTime;
  /** TTL of the temporary branch, should pitr die before deleting it (default 6 h). */
  branchTtlMs?: number;
}

// ---------------------------------------------------------------------------------------------
// Choosing the source through a provider

/**
 * Exports production (default), a recovery branch or URL (`branch`), or production at a past
 * point (`at`: a temporary recovery branch, always deleted afterwards, also on failure).
 */
export async function exportFromProvider(options: ProviderExportOptions): Promise<ExportResult> {
  const { provider, branch, at, branchTtlMs, ...rest } = options;
  if (branch !== undefined && at !== undefined) throw badInput('branch_and_at', 'give either --branch or --at, not both');
  if (at !== undefined) {
    const created = await provider.createRecoveryBranch(at, {
      ttlMs: branchTtlMs ?? 6 * 3600_000,
      ...(options.signal && { signal: options.signal }),
      ...(options.onProgress && { onProgress: options.onProgress }),
    });
    let result: ExportResult | undefined;
    try {
      const url = await provider.connectionString(created.id);
      const target = at.kind === 'snapshot' ? `snapshot:${at.name}` : created.target;
      result = await runExport({
        ...rest,
        sourceUrl: url,
        sourceLabel: `production at ${target} (temporary recovery branch ${created.name})`,
        target,
        resolvedTarget: at.kind === 'snapshot' ? created.target : null,
      });
    } finally {
      options.onProgress?.({ phase: 'cleanup', message: `deleting the temporary recovery branch ${created.name}` });
      try {
        await provider.deleteRecoveryBranch(created.id);
      } catch (err) {
        const why = redactSecrets(err instanceof Error ? err.message : String(err));
        // Only worth a warning when the export itself worked; a failure already says enough.
        result?.warnings.push(`could not delete the temporary recovery branch ${created.name} (${why}): delete it with pitr branches delete ${created.name}`);
      }
    }
    return result;
  }
  if (branch !== undefined && /^postgres(ql)?:\/\//i.test(branch)) {
    return runExport({ ...rest, sourceUrl: branch, sourceLabel: redactUrl(branch), target: null });
  }
  if (branch !== undefined) {
    const b = await provider.getRecoveryBranch(branch);
    const url = await provider.connectionString(b.id);
    return runExport({ ...rest, sourceUrl: url, sourceLabel: `recovery branch ${b.name} (production at ${b.target})`, target: b.target });
  }
  const url = await provider.productionUrl();
  return runExport({ ...rest, sourceUrl: url, sourceLabel: `production (${redactUrl(url)})`, target: null });
}

// ---------------------------------------------------------------------------------------------
// Export

export async function runExport(options: ExportOptions): Promise<ExportResult> {
  const started = performance.now();
  const createdAt = new Date();
  const progress = options.onProgress;
  const warnings: string[] = [];
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const sourceLabel = redactSecrets(options.sourceLabel);
  registerUrlPassword(options.sourceUrl);
  if (options.name !== undefined) checkName(options.name);
  throwIfAborted(options.signal);

  const store = openExportStore(options.location, options.storeOptions ?? {});
  let client: pg.Client | undefined;
  try {
    progress?.({ phase: 'connect', message: 'connecting to the source' });
    client = await connect(options.sourceUrl, { applicationName: 'pitr export' });
    const facts = (
      await client.query<{ version: string; num: number; db: string }>(
        `select current_setting('server_version') as version, current_setting('server_version_num')::int as num, current_database() as db`,
      )
    ).rows[0]!;
    const serverMajor = Math.floor(facts.num / 10000);
    const name = options.name ?? defaultName(facts.db, createdAt);
    const dumpKey = name + DUMP_SUFFIX;
    const manifestKey = name + MANIFEST_SUFFIX;
    await refuseExisting(store, name, [dumpKey, manifestKey]);
    const pgDump = await findClientProgram('pg_dump', serverMajor);

    // One snapshot for pg_dump and for the counts.
    await client.query('begin isolation level repeatable read read only');
    let snapshot: string | null = null;
    try {
      snapshot = (await client.query<{ s: string }>('select pg_export_snapshot() as s')).rows[0]!.s;
    } catch (err) {
      await client.query('rollback');
      await client.query('begin isolation level repeatable read read only');
      warnings.push(
        `the source cannot export a snapshot (${oneLine(err)}): the row counts were taken separately from the dump and may differ from it on a live database`,
      );
    }
    // pg_dump needs this transaction alive until it has imported the snapshot; the counts may take long.
    await client.query(`set local idle_in_transaction_session_timeout = 0; set local statement_timeout = 0`);
    const tables = await listUserTables(client);

    progress?.({ phase: 'export', message: `dumping ${facts.db} (${tables.length} table${tables.length === 1 ? '' : 's'}) with ${pgDump.path}` });
    const dumpStarted = performance.now();
    const child = spawn(pgDump.path, ['--format=custom', '--no-password', ...(snapshot ? [`--snapshot=${snapshot}`] : [])], {
      env: libpqEnvironment(options.sourceUrl),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const dumpExit = watchChild(child, 'pg_dump');

    const plain = new HashTap();
    const cipher = new HashTap();
    let counted = 0;
    let lastReport = 0;
    plain.onBytes = (bytes) => {
      const now = performance.now();
      if (now - lastReport < PROGRESS_EVERY_MS) return;
      lastReport = now;
      const rate = bytes / MiB / Math.max((now - dumpStarted) / 1000, 0.001);
      progress?.({ phase: 'export', message: `dumped ${mib(bytes)} MB (${rate.toFixed(1)} MB/s); counted ${counted} of ${tables.length} tables` });
    };
    // The first failure is the one to report: later ones (a broken pipe, a premature close) are
    // only its echoes through the other stages.
    let cause: unknown;
    const fail = (err: unknown) => {
      cause ??= err;
      if (!plain.destroyed) plain.destroy(err instanceof Error ? err : new Error(String(err)));
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    };
    const onAbort = () => fail(new PitrError('interrupted', 'interrupted: the export was stopped and nothing was kept'));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const counting = countRows(client, tables, () => counted++);
    counting.catch(fail);
    // The plaintext may only end when pg_dump has exited 0 and every table is counted: a dump
    // that stops early must never be committed as a (perfectly well encrypted) complete export.
    let rowsByTable: number[] | undefined;
    plain.beforeEnd = async () => {
      const exit = await dumpExit;
      if (exit.error || exit.code !== 0) {
        cause ??= exit.error ?? dumpFailure(exit);
        throw cause;
      }
      rowsByTable = await counting; // a failure is already the cause (fail)
    };
    const chain = pipeline(child.stdout!, plain, createEncryptStream(options.masterKey, { chunkBytes }), cipher);
    const writing = store.write(dumpKey, cipher, {});
    writing.catch((err: unknown) => {
      cause ??= err; // the destination failed on its own (a body failure carries the cause already set)
    });
    const [chainResult, writeResult] = await Promise.allSettled([chain, writing]);
    options.signal?.removeEventListener('abort', onAbort);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const exit = await dumpExit;
    const dumpSeconds = (performance.now() - dumpStarted) / 1000;
    if (chainResult.status === 'rejected' || writeResult.status === 'rejected' || !rowsByTable) {
      const first = cause ?? [writeResult, chainResult].find((r) => r.status === 'rejected')?.reason;
      if (first instanceof PitrError) throw first;
      throw new PitrError('export_failed', `the export failed: ${oneLine(first)}`, { cause: first });
    }
    await client.query('rollback').catch(() => undefined);
    if (exit.stderr.trim()) warnings.push(...pgDumpWarnings(exit.stderr));

    const manifestTables: ManifestTable[] = tables.map((t, i) => ({ schema: t.schema, name: t.name, rows: rowsByTable![i]! }));
    const { manifest, text } = signManifest(
      {
        format: MANIFEST_FORMAT,
        version: MANIFEST_VERSION,
        name,
        createdAt: createdAt.toISOString(),
        source: sourceLabel,
        database: facts.db,
        target: options.target,
        resolvedTarget: options.resolvedTarget ?? null,
        consistent: snapshot !== null,
        server: { version: facts.version, versionNum: facts.num },
        pgDump: { version: pgDump.version, major: pgDump.major },
        tool: { name: 'pitr', version: TOOL_VERSION },
        dump: {
          object: dumpKey,
          format: 'custom',
          bytes: plain.bytes,
          sha256: plain.hex(),
          encryptedBytes: cipher.bytes,
          encryptedSha256: cipher.hex(),
          chunkBytes,
          cipher: 'aes-256-gcm',
        },
        key: { id: keyId(options.masterKey), kdf: 'hkdf-sha256' },
        tables: manifestTables,
        seconds: round((performance.now() - started) / 1000),
      },
      options.masterKey,
    );
    progress?.({ phase: 'export', message: `writing ${manifestKey}` });
    try {
      await store.writeSmall(manifestKey, text);
    } catch (err) {
      // Without its manifest the dump is an unfinished export: do not leave it looking like one.
      await store.remove(dumpKey).catch(() => undefined);
      throw err;
    }
    return {
      name,
      location: store.location,
      dumpObject: objectPath(store, dumpKey),
      manifestObject: objectPath(store, manifestKey),
      source: sourceLabel,
      database: facts.db,
      target: options.target,
      consistent: snapshot !== null,
      server: facts.version,
      pgDump: pgDump.version,
      bytes: plain.bytes,
      encryptedBytes: cipher.bytes,
      sha256: manifest.dump.sha256,
      encryptedSha256: manifest.dump.encryptedSha256,
      tables: manifestTables.length,
      rows: manifestTables.reduce((a, t) => a + t.rows, 0),
      seconds: round((performance.now() - started) / 1000),
      dumpSeconds: round(dumpSeconds),
      mbPerSecond: round(plain.bytes / MiB / Math.max(dumpSeconds, 0.001), 2),
      keyId: manifest.key.id,
      warnings,
      manifest,
    };
  } finally {
    await client?.end().catch(() => undefined);
    store.close();
  }
}

function checkName(name: string): void {
  if (!EXPORT_NAME.test(name)) {
    throw badInput('bad_export_name', `"${redactSecrets(name)}" is not a valid export name: use letters, digits, . _ - (at most 151, starting with a letter or digit)`);
  }
  assertKey(name + DUMP_SUFFIX);
}

function defaultName(database: string, at: Date): string {
  const db = database.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 60) || 'db';
  return `pitr-${db}-${formatCompactUtc(at)}`;
}

async function refuseExisting(store: ExportStore, name: string, keys: string[]): Promise<void> {
  let existing: string[];
  try {
    existing = (await store.list(name)).map((o) => o.key);
  } catch (err) {
    if (isCode(err, 'export_location_missing')) return; // a directory is created on first write
    throw err;
  }
  const clash = keys.find((k) => existing.includes(k));
  if (clash) throw badInput('export_exists', `${objectPath(store, clash)} already exists: choose another --name`);
}

export function objectPath(store: ExportStore, key: string): string {
  return store.kind === 'dir' ? join(store.location, key) : `${store.location}/${key}`;
}

/** The last meaningful pg_dump line when it failed, without its "pg_dump: error:" prefix. */
function dumpFailure(exit: ChildExit): PitrError {
  const why = exit.signal ? `killed by ${exit.signal}` : stripToolPrefix(lastMeaningfulLine(exit.stderr), 'pg_dump');
  return new PitrError('pg_dump_failed', `pg_dump failed: ${why}`, { detail: redactSecrets(exit.stderr) });
}

function pgDumpWarnings(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => /warning:/i.test(l))
    .slice(0, 5)
    .map((l) => redactSecrets(stripToolPrefix(l.trim(), 'pg_dump')));
}

export function stripToolPrefix(line: string, tool: string): string {
  return line.replace(new RegExp(`^${tool}:\\s*(error:\\s*|warning:\\s*)?`, 'i'), '').replace(/\s+/g, ' ').trim();
}

// ---------------------------------------------------------------------------------------------
// Tables and row counts

export interface UserTable {
  schema: string;
  name: string;
}

/**
 * The tables whose rows pg_dump writes as TABLE DATA: ordinary tables and leaf partitions
 * (relkind r) outside the system schemas, temporary tables and extension members. Partitioned
 * parents hold no rows of their own and pg_dump copies each partition separately; COPY TO of an
 * inheritance parent copies only its own rows. So every table is counted with ONLY, and each
 * row is counted exactly once, the way pg_restore puts it back.
 */
export async function listUserTables(client: pg.ClientBase): Promise<UserTable[]> {
  const { rows } = await client.query<UserTable>(`
    select n.nspname as schema, c.relname as name
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where c.relkind = 'r'
      and c.relpersistence <> 't'
      and n.nspname not in ('pg_catalog', 'information_schema')
      and n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
      and not exists (select 1 from pg_depend d
                      where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
    order by n.nspname collate "C", c.relname collate "C"`);
  return rows;
}

/** Exact row counts, in the caller's transaction, one table after another. */
export async function countRows(client: pg.ClientBase, tables: readonly UserTable[], onTable?: (table: UserTable, rows: number) => void): Promise<number[]> {
  const out: number[] = [];
  for (const t of tables) {
    let n: number;
    try {
      n = Number((await client.query<{ n: string }>(`select count(*) as n from only ${qualifiedName(t.schema, t.name)}`)).rows[0]!.n);
    } catch (err) {
      throw new PitrError('export_count_failed', `counting the rows of ${t.schema}.${t.name} failed: ${oneLine(err)}`, { cause: err });
    }
    out.push(n);
    onTable?.(t, n);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Verify

export async function verifyExport(options: VerifyOptions): Promise<VerifyResult> {
  const started = performance.now();
  const progress = options.onProgress;
  const { location, key } = splitObjectUrl(options.object);
  const base = key.endsWith(DUMP_SUFFIX) ? key.slice(0, -DUMP_SUFFIX.length) : key.endsWith(MANIFEST_SUFFIX) ? key.slice(0, -MANIFEST_SUFFIX.length) : key;
  if (!base) throw badInput('bad_export_location', `"${redactSecrets(options.object)}" does not name an export`);
  const dumpKey = base + DUMP_SUFFIX;
  const manifestKey = base + MANIFEST_SUFFIX;
  throwIfAborted(options.signal);

  const store = openExportStore(location, options.storeOptions ?? {});
  let cluster: LocalCluster | undefined;
  let scratchRoot: string | undefined;
  let restoreUrl = '';
  try {
    progress?.({ phase: 'verify', message: `reading ${manifestKey}` });
    let manifestText: Buffer;
    try {
      manifestText = await store.readSmall(manifestKey);
    } catch (err) {
      if (!isCode(err, 'export_not_found')) throw err;
      throw new PitrError(
        'export_incomplete',
        `no manifest ${manifestKey} in ${store.location}: the export did not finish (the manifest is written last), or the manifest was moved`,
        { cause: err },
      );
    }
    let manifest: ExportManifest;
    try {
      manifest = openManifest(manifestText, options.masterKey, objectPath(store, manifestKey));
    } catch (err) {
      // The key id is part of what the HMAC covers: let the dump's own key check have the last word.
      if (isCode(err, 'export_wrong_key') && (await dumpAcceptsKey(store, dumpKey, options.masterKey))) {
        throw new PitrError('export_manifest_tampered', `${objectPath(store, manifestKey)} was modified after the export was made (its HMAC does not match)`);
      }
      throw err;
    }
    // A valid manifest of another export (same key) swapped in is refused before the dump is read.
    checkManifestNamesObject(manifest, { name: base, dumpKey }, objectPath(store, manifestKey));

    const pgRestore = await findClientProgram('pg_restore', manifest.pgDump.major, { newestIfMissing: true });
    let database = '';
    if (options.restore) {
      progress?.({ phase: 'verify', message: 'starting a throw-away PostgreSQL cluster to restore into' });
      scratchRoot = await mkdtemp(join(options.scratchDir ?? tmpdir(), 'pitr-verify-'));
      // Private to the postgres OS user that runs the scratch server.
      await chmod(scratchRoot, 0o700);
      await ensureServerDir(scratchRoot);
      cluster = await createLocalCluster({ root: scratchRoot, fast: true, password: true });
      throwIfAborted(options.signal);
      database = manifest.database || 'restored';
      restoreUrl = await prepareScratchDatabase(cluster, database);
    }

    // One pass over the object: authenticate and decrypt every chunk, hash both forms, and feed
    // pg_restore --list (and the restore) from the decrypted stream.
    progress?.({ phase: 'verify', message: `authenticating and decrypting ${dumpKey}` });
    const streamStarted = performance.now();
    const source = await store.read(dumpKey);
    const cipher = new HashTap();
    const plain = new HashTap();
    let lastReport = 0;
    cipher.onBytes = (bytes) => {
      const now = performance.now();
      if (now - lastReport < PROGRESS_EVERY_MS) return;
      lastReport = now;
      const rate = bytes / MiB / Math.max((now - streamStarted) / 1000, 0.001);
      const total = manifest.dump.encryptedBytes;
      progress?.({
        phase: 'verify',
        message: `${options.restore ? 'restoring' : 'verified'} ${mib(bytes)} of ${mib(total)} MB (${rate.toFixed(1)} MB/s)`,
        ...(total > 0 && { fraction: Math.min(1, bytes / total) }),
      });
    };

    const lister = spawn(pgRestore.path, ['--list'], { env: minimalEnvironment(), stdio: ['pipe', 'pipe', 'pipe'] });
    const listExit = watchChild(lister, 'pg_restore');
    const listCount = { entries: 0, tableData: 0 };
    countListLines(lister.stdout!, listCount);
    const sinks: ChildProcess[] = [lister];
    let restorer: ChildProcess | undefined;
    let restoreExit: Promise<ChildExit> | undefined;
    const restoreStarted = performance.now();
    if (cluster) {
      restorer = spawn(pgRestore.path, ['--no-owner', '--no-acl', '--exit-on-error', '--no-password', `--dbname=${database}`], {
        env: restoreEnvironment(`${restoreUrl}?sslmode=disable`),
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      restoreExit = watchChild(restorer, 'pg_restore');
      sinks.push(restorer);
    }

    const fanOut = new ChildFanOut(sinks);
    const killAll = () => {
      for (const c of sinks) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    };
    const onAbort = () => {
      source.destroy(new PitrError('interrupted', 'interrupted: verification stopped'));
      killAll();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let streamError: unknown;
    try {
      await pipeline(source, cipher, createDecryptStream(options.masterKey), plain, fanOut);
    } catch (err) {
      streamError = err;
      killAll();
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    const [listed, restored] = await Promise.all([listExit, restoreExit]);
    const restoreSeconds = (performance.now() - restoreStarted) / 1000;
    const streamSeconds = (performance.now() - streamStarted) / 1000;
    if (streamError !== undefined) {
      if (options.signal?.aborted) throw new PitrError('interrupted', 'interrupted: verification stopped');
      if (streamError instanceof PitrError) throw streamError;
      throw new PitrError('export_read_failed', `reading ${objectPath(store, dumpKey)} failed: ${oneLine(streamError)}`, { cause: streamError });
    }

    // Every chunk authenticated. Now the object must be the one the manifest describes.
    const d = manifest.dump;
    if (cipher.bytes !== d.encryptedBytes || cipher.hex() !== d.encryptedSha256 || plain.bytes !== d.bytes || plain.hex() !== d.sha256) {
      throw new PitrError(
        'export_tampered',
        `${objectPath(store, dumpKey)} is not the dump its manifest describes (${cipher.bytes} encrypted bytes with sha256 ${cipher.hex().slice(0, 12)}…, the manifest says ${d.encryptedBytes} with ${d.encryptedSha256.slice(0, 12)}…)`,
      );
    }
    if (listed.error) throw listed.error;
    if (listed.code !== 0) {
      throw new PitrError('export_list_failed', `pg_restore --list rejected the decrypted dump: ${stripToolPrefix(lastMeaningfulLine(listed.stderr), 'pg_restore')}`, {
        detail: redactSecrets(listed.stderr),
      });
    }

    let restoreResult: VerifyResult['restore'] = null;
    if (cluster && restored) {
      if (restored.error) throw restored.error;
      if (restored.code !== 0) {
        throw new PitrError('export_restore_failed', `pg_restore into a throw-away cluster failed: ${firstRestoreError(restored.stderr)}`, {
          detail: redactSecrets(restored.stderr),
        });
      }
      progress?.({ phase: 'verify', message: `restored in ${restoreSeconds.toFixed(1)} s; counting rows` });
      const counts = await withScratchClient(cluster.urlFor(database), async (c) => {
        const present = await listUserTables(c);
        return { present, rows: await countRows(c, present) };
      });
      assertCountsMatch(
        manifest.tables,
        counts.present.map((t, i) => ({ ...t, rows: counts.rows[i]! })),
      );
      const serverVersion = await withScratchClient(cluster.url, async (c) => (await c.query<{ v: string }>(`select current_setting('server_version') as v`)).rows[0]!.v);
      restoreResult = {
        seconds: round(restoreSeconds),
        database,
        server: serverVersion,
        tables: manifest.tables.length,
        rows: manifest.tables.reduce((a, t) => a + t.rows, 0),
      };
    }

    return {
      ok: true,
      name: manifest.name,
      dumpObject: objectPath(store, dumpKey),
      manifestObject: objectPath(store, manifestKey),
      manifest,
      authenticated: {
        encryptedBytes: cipher.bytes,
        bytes: plain.bytes,
        sha256: plain.hex(),
        seconds: round(streamSeconds),
        mbPerSecond: round(cipher.bytes / MiB / Math.max(streamSeconds, 0.001), 2),
      },
      list: { ...listCount },
      restore: restoreResult,
      seconds: round((performance.now() - started) / 1000),
    };
  } finally {
    store.close();
    if (cluster) {
      progress?.({ phase: 'cleanup', message: 'removing the throw-away cluster' });
      await cluster.destroy().catch(() => undefined);
    }
    if (scratchRoot) await rm(scratchRoot, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * Where restored row counts differ from the manifest's, one line per table: a different count,
 * a table missing after the restore, or a table the manifest does not know. Empty when equal.
 */
/** Restored row counts must equal the manifest's: one line naming the first tables that differ. */
export function assertCountsMatch(expected: readonly ManifestTable[], restored: readonly ManifestTable[]): void {
  const differences = countDifferences(expected, restored);
  if (!differences.length) return;
  const shown = differences.slice(0, 3).join('; ');
  throw new PitrError(
    'export_counts_differ',
    `the restored row counts differ from the manifest in ${differences.length} table${differences.length === 1 ? '' : 's'}: ${shown}${differences.length > 3 ? `; and ${differences.length - 3} more` : ''}`,
    { detail: differences.join('\n') },
  );
}

export function countDifferences(expected: readonly ManifestTable[], restored: readonly ManifestTable[]): string[] {
  const key = (t: { schema: string; name: string }) => `${t.schema}.${t.name}`;
  const left = new Map(restored.map((t) => [`${t.schema}\u0000${t.name}`, t]));
  const out: string[] = [];
  for (const t of expected) {
    const got = left.get(`${t.schema}\u0000${t.name}`);
    left.delete(`${t.schema}\u0000${t.name}`);
    if (!got) out.push(`${key(t)} missing (manifest ${t.rows} rows)`);
    else if (got.rows !== t.rows) out.push(`${key(t)} ${got.rows} rows (manifest ${t.rows})`);
  }
  for (const t of left.values()) out.push(`${key(t)} ${t.rows} rows (not in the manifest)`);
  return out;
}

/** True when the dump's header accepts this key (its key check passes). */
async function dumpAcceptsKey(store: ExportStore, dumpKey: string, masterKey: Buffer): Promise<boolean> {
  let source: Readable;
  try {
    source = await store.read(dumpKey);
  } catch {
    return false;
  }
  const decrypt = createDecryptStream(masterKey);
  return new Promise<boolean>((resolve) => {
    const done = (ok: boolean) => {
      source.destroy();
      decrypt.destroy();
      resolve(ok);
    };
    decrypt.once('data', () => done(true));
    decrypt.once('end', () => done(true));
    decrypt.once('error', (err) => done(!isCode(err, 'export_wrong_key')));
    source.once('error', () => done(false));
    source.pipe(decrypt);
  });
}

const RESTORE_ROLE = 'pitr_restore';

/**
 * The scratch database belongs to a role without superuser rights, and the dump is restored as
 * that role: a function in the dumped schema (called by a CHECK or a default during the load)
 * runs with no more rights than the dump's own objects. Returns that role's URL.
 */
async function prepareScratchDatabase(cluster: LocalCluster, database: string): Promise<string> {
  const password = randomBytes(24).toString('base64url');
  registerSecret(password);
  await withScratchClient(cluster.url, async (admin) => {
    await admin.query(`create role ${quoteIdent(RESTORE_ROLE)} login nosuperuser nocreaterole nocreatedb password ${quoteLiteral(password)}`);
    if (database === 'postgres') await admin.query(`alter database postgres owner to ${quoteIdent(RESTORE_ROLE)}`);
    else await admin.query(`create database ${quoteIdent(database)} owner ${quoteIdent(RESTORE_ROLE)} template template0`);
  });
  // Before Postgres 15 the public schema belongs to the bootstrap superuser.
  await withScratchClient(cluster.urlFor(database), (c) => c.query(`alter schema public owner to ${quoteIdent(RESTORE_ROLE)}`));
  const url = new URL(cluster.urlFor(database));
  url.username = RESTORE_ROLE;
  url.password = encodeURIComponent(password);
  return url.toString();
}

/** pg_restore gets where to connect and nothing else of pitr's environment. */
function restoreEnvironment(url: string): NodeJS.ProcessEnv {
  const pgVars = Object.entries(libpqEnvironment(url)).filter(([k]) => k.startsWith('PG'));
  return minimalEnvironment(Object.fromEntries(pgVars));
}

async function withScratchClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = await connect(url, { driver: 'pg', timeoutMs: 10_000 });
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Counts TOC lines of `pg_restore --list` as they stream by (a big schema's TOC is never held whole). */
function countListLines(stdout: Readable, into: { entries: number; tableData: number }): void {
  let rest = '';
  const take = (line: string) => {
    if (!line.trim() || line.startsWith(';')) return;
    into.entries++;
    if (/^\d+;\s+\d+\s+\d+\s+TABLE DATA\s/.test(line)) into.tableData++;
  };
  stdout.setEncoding('utf8');
  stdout.on('data', (d: string) => {
    const lines = (rest + d).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines) take(l);
  });
  stdout.on('end', () => take(rest));
}

/** pg_restore's first error, one line: the statement that failed and why. */
export function firstRestoreError(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim());
  const first = lines.find((l) => /\berror:/i.test(l)) ?? lines.find(Boolean) ?? 'no output';
  return redactSecrets(stripToolPrefix(first, 'pg_restore'));
}

/**
 * Writes every chunk to the stdin of each child still reading, waiting for each to drain;
 * a child that stops reading (pg_restore --list after the TOC) is simply left out from then on,
 * so the whole object is still read and authenticated.
 */
class ChildFanOut extends Writable {
  private readonly open = new Set<Writable>();

  constructor(children: ChildProcess[]) {
    super({ highWaterMark: 1 << 20 });
    for (const child of children) {
      const stdin = child.stdin;
      if (!stdin) continue;
      this.open.add(stdin);
      const gone = () => this.open.delete(stdin);
      stdin.on('error', gone); // EPIPE once the child stopped reading
      stdin.on('close', gone);
      child.on('exit', gone);
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const waits: Promise<void>[] = [];
    for (const stdin of this.open) {
      if (stdin.destroyed || !stdin.writable) {
        this.open.delete(stdin);
        continue;
      }
      if (!stdin.write(chunk)) {
        waits.push(
          new Promise<void>((resolve) => {
            const done = () => {
              stdin.off('drain', done);
              stdin.off('close', done);
              stdin.off('error', done);
              resolve();
            };
            stdin.on('drain', done);
            stdin.on('close', done);
            stdin.on('error', done);
          }),
        );
      }
    }
    if (waits.length === 0) callback();
    else void Promise.all(waits).then(() => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    for (const stdin of this.open) if (!stdin.destroyed) stdin.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (error: Error | null) => void): void {
    for (const stdin of this.open) stdin.destroy();
    this.open.clear();
    callback(err);
  }
}

// ---------------------------------------------------------------------------------------------
// Streams and child processes

/** Passes bytes through, counting them and hashing them (SHA-256); `beforeEnd` may veto the end. */
export class HashTap extends Transform {
  bytes = 0;
  onBytes: ((bytes: number) => void) | undefined;
  beforeEnd: (() => Promise<void>) | undefined;
  private readonly hash = createHash('sha256');
  private digest: string | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (!this.beforeEnd) {
      callback();
      return;
    }
    this.beforeEnd().then(
      () => callback(),
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
    );
  }

  hex(): string {
    return (this.digest ??= this.hash.digest('hex'));
  }
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last 64 KiB of stderr. */
  stderr: string;
  /** Spawning failed (program missing). */
  error?: PitrError;
}

export function watchChild(child: ChildProcess, program: string): Promise<ChildExit> {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    if (stderr.length > 128 * 1024) stderr = stderr.slice(-64 * 1024);
  });
  return new Promise((resolve) => {
    let spawnError: PitrError | undefined;
    child.once('error', (err) => {
      spawnError = new PitrError('program_not_found', `cannot run ${program}: ${oneLine(err)}`, { cause: err });
      if (child.pid === undefined) resolve({ code: null, signal: null, stderr, error: spawnError });
    });
    child.once('close', (code, signal) => resolve({ code, signal, stderr, ...(spawnError && { error: spawnError }) }));
  });
}

/**
 * libpq variables that say where to connect and as whom: cleared before a URL's own are set, so
 * a stray PGHOST or PGSERVICE in the environment can never send a child somewhere else. TLS
 * files, PGPASSFILE and the like are left for the user's setup.
 */
const TARGET_VARIABLES = ['PGHOST', 'PGHOSTADDR', 'PGPORT', 'PGUSER', 'PGPASSWORD', 'PGDATABASE', 'PGSERVICE', 'PGSERVICEFILE', 'PGTARGETSESSIONATTRS', 'PGLOADBALANCEHOSTS', 'PGREQUIREAUTH'];

export function cleanPgEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of TARGET_VARIABLES) delete env[k];
  return env;
}

const LIBPQ_PARAMS: Record<string, string> = {
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  sslcrl: 'PGSSLCRL',
  sslcrldir: 'PGSSLCRLDIR',
  sslsni: 'PGSSLSNI',
  sslnegotiation: 'PGSSLNEGOTIATION',
  requiressl: 'PGREQUIRESSL',
  channel_binding: 'PGCHANNELBINDING',
  gssencmode: 'PGGSSENCMODE',
  krbsrvname: 'PGKRBSRVNAME',
  application_name: 'PGAPPNAME',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  options: 'PGOPTIONS',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
  load_balance_hosts: 'PGLOADBALANCEHOSTS',
  hostaddr: 'PGHOSTADDR',
  host: 'PGHOST',
  port: 'PGPORT',
  user: 'PGUSER',
  password: 'PGPASSWORD',
  dbname: 'PGDATABASE',
  passfile: 'PGPASSFILE',
  service: 'PGSERVICE',
};

/**
 * The libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, …) for a
 * postgres:// URL, on top of the current environment minus its connection-target PG* settings. Client tools
 * get their connection this way because a command line is visible to every user in `ps`.
 */
export function libpqEnvironment(url: string): NodeJS.ProcessEnv {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw badInput('bad_database_url', 'the database URL is not a valid postgres:// URL');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw badInput('bad_database_url', `the database URL must start with postgres:// or postgresql:// (got ${u.protocol}//)`);
  }
  const env = cleanPgEnvironment();
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host) env.PGHOST = decodeURIComponent(host);
  if (u.port) env.PGPORT = u.port;
  if (u.username) env.PGUSER = decodeURIComponent(u.username);
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  const db = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (db) env.PGDATABASE = db;
  for (const [param, value] of u.searchParams) {
    const name = LIBPQ_PARAMS[param.toLowerCase()];
    if (name) env[name] = value;
    // node-postgres spellings that libpq does not know
    else if (param === 'ssl' && /^(1|true|require)$/i.test(value)) env.PGSSLMODE ??= 'require';
  }
  // node-postgres accepts sslmode=no-verify (TLS without certificate checks): libpq's "require".
  if (env.PGSSLMODE === 'no-verify') env.PGSSLMODE = 'require';
  return env;
}

function registerUrlPassword(url: string): void {
  try {
    const password = new URL(url).password;
    if (password) registerSecret(decodeURIComponent(password));
  } catch {
    /* reported where the URL is used */
  }
}

// ---------------------------------------------------------------------------------------------
// Finding pg_dump / pg_restore

export interface ClientProgram {
  path: string;
  major: number;
  /** `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` */
  version: string;
}

const programCache = new Map<string, Promise<ClientProgram[]>>();

/**
 * Every `program` found, newest major first: PITR_PG_BIN, `pg_config --bindir`,
 * /usr/lib/postgresql/<major>/bin, then PATH (the same places the server binaries are looked
 * for, but client tools need no server installed next to them).
 */
function allInstalled(program: string): Promise<ClientProgram[]> {
  let found = programCache.get(program);
  if (!found) {
    found = (async () => {
      const dirs: string[] = [];
      if (process.env.PITR_PG_BIN) dirs.push(process.env.PITR_PG_BIN);
      const pgConfig = await run('pg_config', ['--bindir']).catch(() => undefined);
      if (pgConfig?.code === 0 && pgConfig.stdout.trim()) dirs.push(pgConfig.stdout.trim());
      const versions = await readdir('/usr/lib/postgresql').catch(() => [] as string[]);
      for (const v of versions.filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))) dirs.push(join('/usr/lib/postgresql', v, 'bin'));
      for (const d of (process.env.PATH ?? '').split(delimiter)) if (d) dirs.push(d);
      const out: ClientProgram[] = [];
      const seen = new Set<string>();
      for (const dir of new Set(dirs)) {
        const path = join(dir, program);
        if (!(await access(path, constants.X_OK).then(() => true, () => false))) continue;
        const result = await run(path, ['--version']).catch(() => undefined);
        const version = result?.stdout.trim() ?? '';
        const major = Number(/\(PostgreSQL\)\s+(\d+)/.exec(version)?.[1]);
        if (!Number.isInteger(major) || seen.has(version)) continue;
        seen.add(version);
        out.push({ path, major, version });
      }
      // Stable: the first place of each major wins, newest major first.
      return out.sort((a, b) => b.major - a.major);
    })();
    programCache.set(program, found);
    found.catch(() => programCache.delete(program));
  }
  return found;
}

/**
 * pg_dump for a server of `major`: the same major if installed, else the oldest newer one
 * (pg_dump refuses servers newer than itself). pg_restore likewise for archives written by
 * pg_dump `major`; with `newestIfMissing` the newest installed is tried anyway.
 */
export async function findClientProgram(program: 'pg_dump' | 'pg_restore', major: number, options: { newestIfMissing?: boolean } = {}): Promise<ClientProgram> {
  const all = await allInstalled(program);
  const exact = all.find((p) => p.major === major);
  if (exact) return exact;
  const newer = all.filter((p) => p.major > major).at(-1);
  if (newer) return newer;
  if (options.newestIfMissing && all[0]) return all[0];
  const have = all.length ? `found only ${all.map((p) => `${p.path} (${p.major})`).join(', ')}` : 'none found via PITR_PG_BIN, pg_config, /usr/lib/postgresql/*/bin or PATH';
  // The embedded server binaries (npm) have no client programs: say where to get them.
  const how = `install the PostgreSQL ${major} client programs (Debian/Ubuntu: apt-get install postgresql-client-${major}; macOS: brew install libpq) or point PITR_PG_BIN at their directory`;
  throw new PitrError(`${program}_not_found`, `${program} ${major} or newer is needed for a PostgreSQL ${major} server: ${have}; ${how}`);
}

// ---------------------------------------------------------------------------------------------
// Small helpers

export function isCode(err: unknown, code: string): boolean {
  return err instanceof PitrError && err.code === code;
}

export function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return redactSecrets(text.split('\n').find((l) => l.trim())?.trim() ?? 'unknown error');
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new PitrError('interrupted', 'interrupted');
}

const mib = (bytes: number) => (bytes / MiB).toFixed(1);
const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;
