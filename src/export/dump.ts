import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { connect } from '../db/connect.js';
import { libpqEnvironment } from '../db/libpq-env.js';
import { registerUrlPassword } from '../db/postgres-url.js';
import { badInput, PitrError } from '../errors.js';
import type { ProgressSink } from '../providers/types.js';
import { redactSecrets } from '../redact.js';
import { findClientProgram } from '../system/client-programs.js';
import { lastMeaningfulLine } from '../system/process.js';
import { formatCompactUtc } from '../time/index.js';
import { stripToolPrefix, watchChild, type ChildExit } from './child-process.js';
import { EXPORT_NAME, isCode, mib, MiB, objectPath, oneLine, PROGRESS_EVERY_MS, round, throwIfAborted } from './common.js';
import { createEncryptStream, DEFAULT_CHUNK_BYTES } from './encryption.js';
import { DUMP_SUFFIX, keyId, MANIFEST_FORMAT, MANIFEST_SUFFIX, MANIFEST_VERSION, signManifest, type ExportManifest, type ManifestTable } from './manifest.js';
import { assertKey, openExportStore, type ExportStore, type ExportStoreOptions } from './store/index.js';
import { HashTap } from './streams.js';
import { countTableRows, listUserTables } from './table-counts.js';

const { version: TOOL_VERSION } = createRequire(import.meta.url)('../../package.json') as { version: string };

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
    const counting = countTableRows(client, tables, () => counted++);
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
