import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { withClient, type ConnectOptions } from '../db/connect.js';
import { libpqEnvironment } from '../db/libpq-env.js';
import { quoteIdent, quoteLiteral } from '../db/sql.js';
import { badInput, PitrError } from '../errors.js';
import type { ProgressSink } from '../providers/types.js';
import { redactSecrets, registerSecret } from '../redact.js';
import { findClientProgram } from '../system/client-programs.js';
import { createLocalCluster, type LocalCluster } from '../system/local-cluster.js';
import { ensureServerDir, lastMeaningfulLine, minimalEnvironment } from '../system/process.js';
import { firstRestoreError, stripToolPrefix, watchChild, type ChildExit } from './child-process.js';
import { isCode, mib, MiB, objectPath, oneLine, PROGRESS_EVERY_MS, round, throwIfAborted } from './common.js';
import { createDecryptStream } from './encryption.js';
import { DUMP_SUFFIX, MANIFEST_SUFFIX, openManifest, type ExportManifest } from './manifest.js';
import { checkManifestNamesObject } from './open.js';
import { openExportStore, splitObjectUrl, type ExportStore, type ExportStoreOptions } from './store/index.js';
import { ChildFanOut, HashTap } from './streams.js';
import { assertCountsMatch, countTableRows, listUserTables } from './table-counts.js';

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
      const counts = await withClient(cluster.urlFor(database), async (c) => {
        const present = await listUserTables(c);
        return { present, rows: await countTableRows(c, present) };
      }, SCRATCH_CONNECT);
      assertCountsMatch(
        manifest.tables,
        counts.present.map((t, i) => ({ ...t, rows: counts.rows[i]! })),
      );
      const serverVersion = await withClient(cluster.url, async (c) => (await c.query<{ v: string }>(`select current_setting('server_version') as v`)).rows[0]!.v, SCRATCH_CONNECT);
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
const SCRATCH_CONNECT: ConnectOptions = { driver: 'pg', timeoutMs: 10_000 };

/**
 * The scratch database belongs to a role without superuser rights, and the dump is restored as
 * that role: a function in the dumped schema (called by a CHECK or a default during the load)
 * runs with no more rights than the dump's own objects. Returns that role's URL.
 */
async function prepareScratchDatabase(cluster: LocalCluster, database: string): Promise<string> {
  const password = randomBytes(24).toString('base64url');
  registerSecret(password);
  await withClient(cluster.url, async (admin) => {
    await admin.query(`create role ${quoteIdent(RESTORE_ROLE)} login nosuperuser nocreaterole nocreatedb password ${quoteLiteral(password)}`);
    if (database === 'postgres') await admin.query(`alter database postgres owner to ${quoteIdent(RESTORE_ROLE)}`);
    else await admin.query(`create database ${quoteIdent(database)} owner ${quoteIdent(RESTORE_ROLE)} template template0`);
  }, SCRATCH_CONNECT);
  // Before Postgres 15 the public schema belongs to the bootstrap superuser.
  await withClient(cluster.urlFor(database), (c) => c.query(`alter schema public owner to ${quoteIdent(RESTORE_ROLE)}`), SCRATCH_CONNECT);
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

