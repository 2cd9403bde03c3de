import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { PassThrough, Readable, Transform } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { S3Client } from '@aws-sdk/client-s3';
import { badInput, PitrError } from '../errors.js';
import { redactSecrets, redactUrl, registerSecret } from '../redact.js';

/**
 * Where encrypted exports live: a local directory or an S3 prefix. An export is a few flat
 * objects under one location (`<name>.dump.enc`, `<name>.manifest.json`). Bodies are streamed
 * both ways so memory stays flat however big the dump; only readSmall/writeSmall buffer.
 *
 * A finished write is all-or-nothing: directories get a hidden `.partial` temp file that is
 * fsynced and renamed into place; S3 objects only appear when PutObject/CompleteMultipartUpload
 * succeeds, and a failed multipart upload is aborted.
 */

export interface ExportStoreOptions {
  /** S3-compatible endpoint (MinIO, R2, a test server). Default: AWS (or AWS_ENDPOINT_URL[_S3]). */
  s3Endpoint?: string;
  /** Default: AWS_REGION, then us-east-1. */
  s3Region?: string;
  /** Path-style addressing (`endpoint/bucket/key`). Default: on when s3Endpoint is set, off for AWS. */
  s3ForcePathStyle?: boolean;
}

export interface ExportObject {
  key: string;
  bytes: number;
  modified: Date;
}

export interface WriteOptions {
  /** Called with the running total of body bytes consumed so far. */
  onProgress?: (bytes: number) => void;
  /** Expected size, if known: lets very large S3 uploads pick bigger parts (S3 allows 10,000 parts). */
  sizeHint?: number;
}

export interface ExportStore {
  /** Printable location (`/abs/dir` or `s3://bucket/prefix`); never contains credentials. */
  readonly location: string;
  readonly kind: 'dir' | 's3';
  /** Streams `body` to `key`, replacing any existing object. All-or-nothing. The body is destroyed if the write fails. */
  write(key: string, body: Readable, options?: WriteOptions): Promise<{ bytes: number }>;
  writeSmall(key: string, data: string | Buffer): Promise<void>;
  /** Fails up front (export_not_found, export_location_missing, s3_*) before any byte is streamed. */
  read(key: string): Promise<Readable>;
  /** Whole object in memory; refuses objects over 16 MiB. */
  readSmall(key: string): Promise<Buffer>;
  /** Objects directly under the location whose key starts with `prefix`, sorted by key. Temp files are never listed. */
  list(prefix?: string): Promise<ExportObject[]>;
  /** Deletes `key`; deleting a key that does not exist is not an error. */
  remove(key: string): Promise<void>;
  /** Releases network sockets (S3); the store must not be used afterwards. */
  close(): void;
}

export type ExportLocation = { kind: 'dir'; path: string } | { kind: 's3'; bucket: string; prefix: string };

export const SMALL_OBJECT_LIMIT = 16 * 1024 * 1024;
const DEFAULT_PART_SIZE = 16 * 1024 * 1024;
const MIB = 1024 * 1024;
const S3_MAX_PARTS = 10_000;
const UPLOAD_QUEUE_SIZE = 4;
const PARTIAL_SUFFIX = '.partial';

// ---------------------------------------------------------------------------------------------
// Locations and keys
// ---------------------------------------------------------------------------------------------

const SCHEME = /^([a-z][a-z0-9+.-]*):\//i;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Parses a user-given location: a directory path (or file:// URL) or `s3://bucket[/prefix]`. */
export function parseExportLocation(location: string): ExportLocation {
  const raw = location.trim();
  if (!raw) throw badInput('bad_export_location', 'empty export location: give a directory or s3://bucket/prefix');
  if (CONTROL.test(raw)) throw badInput('bad_export_location', 'the export location contains control characters');
  const scheme = SCHEME.exec(raw)?.[1]?.toLowerCase() ?? (/^s3:/i.test(raw) ? 's3' : undefined);
  if (scheme === undefined) return { kind: 'dir', path: resolve(raw) };
  if (scheme === 'file') {
    try {
      return { kind: 'dir', path: resolve(fileURLToPath(raw)) };
    } catch {
      throw badInput('bad_export_location', `"${redactSecrets(raw)}" is not a valid file:// URL`);
    }
  }
  if (scheme !== 's3') {
    throw badInput('bad_export_location', `unsupported export location scheme "${scheme}:": give a directory or s3://bucket/prefix`);
  }
  if (!/^s3:\/\//i.test(raw)) throw badInput('bad_export_location', 'an S3 location looks like s3://bucket/prefix');
  return parseS3(raw.slice('s3://'.length));
}

function parseS3(rest: string): ExportLocation {
  const slash = rest.indexOf('/');
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash + 1);
  if (bucket.includes('@')) {
    // Never echo it: the part before @ is probably an access key and secret.
    throw badInput(
      'bad_export_location',
      'do not put credentials in the S3 location; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE',
    );
  }
  if (!bucket) throw badInput('bad_export_location', 'the S3 location has no bucket: use s3://bucket/prefix');
  const bucketProblem = checkBucketName(bucket);
  if (bucketProblem) throw badInput('bad_export_location', `invalid S3 bucket name "${bucket}": ${bucketProblem}`);
  if (/[?#]/.test(path)) {
    throw badInput('bad_export_location', `the S3 prefix "${path}" contains "?" or "#": S3 locations take no query or fragment`);
  }
  const segments = path.split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '.' || s === '..')) {
    throw badInput('bad_export_location', `the S3 prefix "${path}" contains "." or ".." segments`);
  }
  const prefix = segments.join('/');
  if (Buffer.byteLength(prefix) > 768) throw badInput('bad_export_location', 'the S3 prefix is too long (at most 768 bytes)');
  return { kind: 's3', bucket, prefix };
}

/** Why a bucket name is not valid for S3 (general purpose buckets), or undefined. */
function checkBucketName(bucket: string): string | undefined {
  if (bucket.length < 3 || bucket.length > 63) return 'bucket names are 3 to 63 characters long';
  if (/[A-Z_]/.test(bucket)) return 'bucket names use lowercase letters, digits, dots and hyphens only';
  if (!/^[a-z0-9.-]+$/.test(bucket)) return 'bucket names use lowercase letters, digits, dots and hyphens only';
  if (!/^[a-z0-9].*[a-z0-9]$/.test(bucket)) return 'bucket names start and end with a letter or digit';
  if (/\.\.|\.-|-\./.test(bucket)) return 'bucket names cannot have ".." or a dot next to a hyphen';
  if (/^\d+\.\d+\.\d+\.\d+$/.test(bucket)) return 'bucket names cannot look like an IP address';
  return undefined;
}

/** The printable form of a parsed location. */
export function formatExportLocation(location: ExportLocation): string {
  return location.kind === 'dir' ? location.path : `s3://${location.bucket}${location.prefix ? `/${location.prefix}` : ''}`;
}

/**
 * Splits a URL or path naming one export object (`s3://bucket/prefix/name.dump.enc`,
 * `/backups/name.dump.enc`) into its store location and key.
 */
export function splitObjectUrl(url: string): { location: string; key: string } {
  const parsed = parseExportLocation(url);
  if (parsed.kind === 'dir') {
    if (/[/\\]$/.test(url.trim())) throw badInput('bad_export_location', `"${parsed.path}" names a directory, not an export file`);
    const key = basename(parsed.path);
    assertKey(key);
    return { location: dirname(parsed.path), key };
  }
  if (!parsed.prefix || url.trim().endsWith('/')) {
    throw badInput('bad_export_location', `${formatExportLocation(parsed)} names a bucket or folder, not an export file`);
  }
  const cut = parsed.prefix.lastIndexOf('/');
  const key = parsed.prefix.slice(cut + 1);
  assertKey(key);
  return { location: formatExportLocation({ ...parsed, prefix: cut === -1 ? '' : parsed.prefix.slice(0, cut) }), key };
}

/** Keys are flat file names: no separators, no hidden names (reserved for temp files). */
export function assertKey(key: string): void {
  const problem =
    !key
      ? 'it is empty'
      : Buffer.byteLength(key) > 200
        ? 'it is longer than 200 bytes'
        : /[/\\]/.test(key)
          ? 'it contains a path separator'
          : CONTROL.test(key)
            ? 'it contains control characters'
            : key.startsWith('.')
              ? 'it starts with "."'
              : key.endsWith(PARTIAL_SUFFIX)
                ? `it ends with "${PARTIAL_SUFFIX}"`
                : undefined;
  if (problem) throw badInput('bad_export_key', `invalid export object name "${redactSecrets(key.replace(CONTROL, '?'))}": ${problem}`);
}

function assertPrefix(prefix: string): void {
  if (prefix) {
    if (/[/\\]/.test(prefix) || CONTROL.test(prefix)) throw badInput('bad_export_key', `invalid export name prefix "${prefix.replace(CONTROL, '?')}"`);
  }
}

// ---------------------------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------------------------

export function openExportStore(location: string, options: ExportStoreOptions = {}): ExportStore {
  const parsed = parseExportLocation(location);
  return parsed.kind === 'dir' ? new DirStore(parsed.path) : new S3Store(parsed.bucket, parsed.prefix, options);
}

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

function firstLine(text: string): string {
  return redactSecrets((text.split('\n').find((l) => l.trim()) ?? '').trim());
}

function errorMessage(err: unknown): string {
  return firstLine(err instanceof Error ? err.message : String(err));
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk);
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new PitrError('export_write_failed', 'export body must be a byte stream (got an object-mode chunk)');
}

/** Re-emits `src` with its errors turned into PitrErrors; destroying the result destroys `src`. */
function mapStreamErrors(src: Readable, map: (err: unknown) => Error): Readable {
  const out = new PassThrough();
  src.on('error', (err) => out.destroy(map(err)));
  out.once('close', () => {
    if (!src.destroyed) src.destroy();
  });
  src.pipe(out);
  return out;
}

/** The body failed (the producer's fault, e.g. pg_dump died) rather than the destination. */
function bodyFailure(err: unknown, key: string, location: string): PitrError {
  if (err instanceof PitrError) return err;
  return new PitrError('export_write_failed', `writing ${key} to ${location} stopped: the data stream failed: ${errorMessage(err)}`, { cause: err });
}

const FS_REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENOTDIR: 'a parent is not a directory',
  EISDIR: 'it is a directory',
  EEXIST: 'a file is in the way',
  EIO: 'I/O error',
};

function fsReason(err: unknown): string {
  const code = errnoCode(err);
  return (code && FS_REASONS[code]) ?? errorMessage(err);
}

// ---------------------------------------------------------------------------------------------
// Directory store
// ---------------------------------------------------------------------------------------------

class DirStore implements ExportStore {
  readonly kind = 'dir' as const;
  readonly location: string;

  constructor(private readonly dir: string) {
    this.location = dir;
  }

  close(): void {}

  async write(key: string, body: Readable, options: WriteOptions = {}): Promise<{ bytes: number }> {
    assertKey(key);
    let bytes = 0;
    try {
      await this.atomicWrite(key, async (fh) => {
        const iterator = body[Symbol.asyncIterator]();
        for (;;) {
          let next: IteratorResult<unknown>;
          let chunk: Buffer;
          try {
            next = await iterator.next();
            if (next.done) break;
            chunk = toBuffer(next.value);
          } catch (err) {
            throw bodyFailure(err, key, this.location);
          }
          let off = 0;
          while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
          bytes += chunk.length;
          if (chunk.length) options.onProgress?.(bytes);
        }
      });
    } catch (err) {
      if (!body.destroyed) body.destroy();
      throw err;
    }
    return { bytes };
  }

  async writeSmall(key: string, data: string | Buffer): Promise<void> {
    assertKey(key);
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    await this.atomicWrite(key, async (fh) => {
      await fh.writeFile(buf);
    });
  }

  /** `.key.<random>.partial` → fill → fsync → rename → fsync the directory. */
  private async atomicWrite(key: string, fill: (fh: FileHandle) => Promise<void>): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true });
    } catch (err) {
      throw new PitrError('export_write_failed', `cannot create export directory ${this.dir}: ${fsReason(err)}`, { cause: err });
    }
    const temp = join(this.dir, `.${key}.${randomBytes(6).toString('hex')}${PARTIAL_SUFFIX}`);
    let fh: FileHandle;
    try {
      fh = await open(temp, 'wx', 0o600);
    } catch (err) {
      throw new PitrError('export_write_failed', `cannot write to export directory ${this.dir}: ${fsReason(err)}`, { cause: err });
    }
    let stage = 'writing';
    try {
      await fill(fh);
      stage = 'syncing';
      await fh.sync();
      await fh.close();
      stage = 'renaming';
      await rename(temp, join(this.dir, key));
    } catch (err) {
      await fh.close().catch(() => undefined);
      await rm(temp, { force: true }).catch(() => undefined);
      if (err instanceof PitrError) throw err;
      throw new PitrError('export_write_failed', `${stage} ${key} in ${this.dir} failed: ${fsReason(err)}`, { cause: err });
    }
    await syncDir(this.dir);
  }

  async read(key: string): Promise<Readable> {
    assertKey(key);
    const file = join(this.dir, key);
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
      if (!(await fh.stat()).isFile()) {
        await fh.close();
        throw Object.assign(new Error('not a file'), { code: 'ENOENT' });
      }
    } catch (err) {
      throw await this.readError(err, key);
    }
    const stream = fh.createReadStream();
    return mapStreamErrors(stream, (err) => new PitrError('export_read_failed', `reading ${file} failed: ${fsReason(err)}`, { cause: err }));
  }

  async readSmall(key: string): Promise<Buffer> {
    assertKey(key);
    const file = join(this.dir, key);
    try {
      const info = await stat(file);
      if (!info.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOENT' });
      if (info.size > SMALL_OBJECT_LIMIT) throw tooLarge(key, this.location, info.size);
      return await readFile(file);
    } catch (err) {
      if (err instanceof PitrError) throw err;
      throw await this.readError(err, key);
    }
  }

  private async readError(err: unknown, key: string): Promise<PitrError> {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') {
      const dirOk = await stat(this.dir).then((s) => s.isDirectory(), () => false);
      if (!dirOk) return missingDir(this.dir, err);
      return new PitrError('export_not_found', `no such export file ${key} in ${this.dir}`, { cause: err });
    }
    return new PitrError('export_read_failed', `reading ${join(this.dir, key)} failed: ${fsReason(err)}`, { cause: err });
  }

  async list(prefix = ''): Promise<ExportObject[]> {
    assertPrefix(prefix);
    let entries;
    try {
      entries = await readdir(this.dir, { withFileTypes: true });
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') throw missingDir(this.dir, err);
      throw new PitrError('export_read_failed', `cannot list export directory ${this.dir}: ${fsReason(err)}`, { cause: err });
    }
    const names = entries
      .filter((e) => e.isFile() && !e.name.startsWith('.') && !e.name.endsWith(PARTIAL_SUFFIX) && e.name.startsWith(prefix))
      .map((e) => e.name);
    const out: ExportObject[] = [];
    for (const name of names) {
      try {
        const info = await stat(join(this.dir, name));
        out.push({ key: name, bytes: info.size, modified: info.mtime });
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw new PitrError('export_read_failed', `cannot stat ${join(this.dir, name)}: ${fsReason(err)}`, { cause: err });
      }
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async remove(key: string): Promise<void> {
    assertKey(key);
    try {
      await rm(join(this.dir, key), { force: true });
    } catch (err) {
      throw new PitrError('export_write_failed', `cannot remove ${join(this.dir, key)}: ${fsReason(err)}`, { cause: err });
    }
    await syncDir(this.dir);
  }
}

function missingDir(dir: string, cause: unknown): PitrError {
  return new PitrError('export_location_missing', `export directory ${dir} does not exist`, { cause });
}

function tooLarge(key: string, location: string, size: number): PitrError {
  return new PitrError('export_too_large', `${key} in ${location} is ${size} bytes, too large to be a manifest (limit ${SMALL_OBJECT_LIMIT})`);
}

/** Makes a rename/unlink durable. Some file systems cannot fsync a directory; that is not fatal. */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    /* best effort: EISDIR/EINVAL/EPERM on platforms without directory fsync */
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// S3 store
// ---------------------------------------------------------------------------------------------

type S3Sdk = typeof import('@aws-sdk/client-s3');
type StorageSdk = typeof import('@aws-sdk/lib-storage');
let s3Sdk: Promise<S3Sdk> | undefined;
let storageSdk: Promise<StorageSdk> | undefined;
// Loaded on first use: commands that never touch S3 do not pay for the SDK.
const loadS3 = (): Promise<S3Sdk> => (s3Sdk ??= import('@aws-sdk/client-s3'));
const loadStorage = (): Promise<StorageSdk> => (storageSdk ??= import('@aws-sdk/lib-storage'));

const CREDENTIAL_ERRORS = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'InvalidClientTokenId',
]);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE', 'ECONNABORTED']);

function networkCode(err: unknown, depth = 0): string | undefined {
  if (!err || typeof err !== 'object' || depth > 3) return undefined;
  const code = errnoCode(err);
  if (code && NETWORK_CODES.has(code)) return code;
  if ((err as { name?: unknown }).name === 'TimeoutError') return 'timed out';
  for (const inner of (err as { errors?: unknown[] }).errors ?? []) {
    const c = networkCode(inner, depth + 1);
    if (c) return c;
  }
  return networkCode((err as { cause?: unknown }).cause, depth + 1);
}

class S3Store implements ExportStore {
  readonly kind = 's3' as const;
  readonly location: string;
  private readonly base: string;
  private readonly endpoint: string | undefined;
  private readonly region: string;
  private client: Promise<S3Client> | undefined;
  private closed = false;

  constructor(
    private readonly bucket: string,
    prefix: string,
    private readonly options: ExportStoreOptions,
  ) {
    this.location = formatExportLocation({ kind: 's3', bucket, prefix });
    this.base = prefix ? `${prefix}/` : '';
    this.region = options.s3Region ?? process.env.AWS_REGION ?? 'us-east-1';
    if (options.s3Endpoint !== undefined) {
      let url: URL;
      try {
        url = new URL(options.s3Endpoint);
      } catch {
        throw badInput('bad_s3_endpoint', `invalid S3 endpoint "${redactSecrets(options.s3Endpoint)}": give a URL like https://host:port`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw badInput('bad_s3_endpoint', `invalid S3 endpoint ${redactUrl(options.s3Endpoint)}: use http:// or https://`);
      }
      if (url.password) registerSecret(decodeURIComponent(url.password));
      this.endpoint = options.s3Endpoint;
    }
  }

  /** Where requests go, for messages. */
  private get printableEndpoint(): string {
    const configured = this.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    return configured ? redactUrl(configured).replace(/\/$/, '') : `https://s3.${this.region}.amazonaws.com`;
  }

  private getClient(): Promise<S3Client> {
    if (this.closed) throw new PitrError('export_store_closed', `the export store for ${this.location} is closed`);
    this.client ??= (async () => {
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
      registerSecret(process.env.AWS_SECRET_ACCESS_KEY);
      registerSecret(process.env.AWS_SESSION_TOKEN);
      const { S3Client } = await loadS3();
      const custom = this.endpoint !== undefined;
      return new S3Client({
        region: this.region,
        ...(custom ? { endpoint: this.endpoint } : {}),
        forcePathStyle: this.options.s3ForcePathStyle ?? custom,
        // Many S3-compatible servers reject the SDK's default flexible checksums; the export
        // format carries its own authentication, so only send checksums S3 requires.
        ...(custom && !process.env.AWS_REQUEST_CHECKSUM_CALCULATION ? { requestChecksumCalculation: 'WHEN_REQUIRED' as const } : {}),
        ...(custom && !process.env.AWS_RESPONSE_CHECKSUM_VALIDATION ? { responseChecksumValidation: 'WHEN_REQUIRED' as const } : {}),
        // Fail fast on a black-holed endpoint; no overall request timeout (parts may be slow).
        requestHandler: { connectionTimeout: 10_000 },
      });
    })();
    return this.client;
  }

  close(): void {
    this.closed = true;
    void this.client?.then((c) => c.destroy(), () => undefined);
  }

  private objectKey(key: string): string {
    return this.base + key;
  }

  /** One line for any S3 failure; never includes credentials. */
  private fail(err: unknown, action: string, key?: string): PitrError {
    if (err instanceof PitrError) return err;
    const net = networkCode(err);
    if (net) {
      const verb = net === 'ECONNRESET' || net === 'EPIPE' || net === 'ECONNABORTED' ? 'lost the connection to' : 'cannot reach';
      return new PitrError('s3_unreachable', `${verb} S3 endpoint ${this.printableEndpoint} (${net}) while ${action}`, { cause: err });
    }
    const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
    const name = e?.Code ?? e?.name ?? 'Error';
    const status = e?.$metadata?.httpStatusCode;
    const where = key ? `${this.location}/${key}` : this.location;
    if (name === 'NoSuchKey' || (name === 'NotFound' && key)) {
      return new PitrError('export_not_found', `no such export file ${key ?? ''} in ${this.location}`, { cause: err });
    }
    if (name === 'NoSuchBucket') {
      return new PitrError('s3_no_bucket', `S3 bucket "${this.bucket}" does not exist (endpoint ${this.printableEndpoint})`, { cause: err });
    }
    if (CREDENTIAL_ERRORS.has(name)) {
      return new PitrError(
        's3_access_denied',
        `S3 refused the credentials (${name}) while ${action}: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE`,
        { cause: err },
      );
    }
    if (name === 'AccessDenied' || name === 'Forbidden' || status === 403) {
      return new PitrError(
        's3_access_denied',
        `S3 refused the credentials access to ${where} (${name}) while ${action}: check the credentials and the bucket policy`,
        { cause: err },
      );
    }
    if (name === 'CredentialsProviderError') {
      return new PitrError('s3_no_credentials', 'no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE', {
        cause: err,
      });
    }
    if (name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed' || status === 301) {
      return new PitrError('s3_wrong_region', `S3 bucket "${this.bucket}" is not in region ${this.region}: set AWS_REGION to the bucket's region`, {
        cause: err,
      });
    }
    const detail = errorMessage(err);
    return new PitrError('s3_failed', `S3 failed while ${action} (${name}${status ? ` ${status}` : ''})${detail && detail !== name ? `: ${detail}` : ''}`, {
      cause: err,
    });
  }

  async write(key: string, body: Readable, options: WriteOptions = {}): Promise<{ bytes: number }> {
    assertKey(key);
    const action = `writing ${key} to ${this.location}`;
    let bytes = 0;
    let bodyError: unknown;
    const counter = new Transform({
      transform(chunk: unknown, _encoding, callback) {
        try {
          const buf = toBuffer(chunk);
          bytes += buf.length;
          options.onProgress?.(bytes);
          callback(null, buf);
        } catch (err) {
          bodyError ??= err;
          callback(err as Error);
        }
      },
    });
    // Not stream.pipeline: when the Upload gives up it destroys `counter`, and pipeline would then
    // fail `body` with "premature close", which would look like the producer's fault.
    body.on('error', (err) => {
      bodyError ??= err;
      counter.destroy(err as Error);
    });
    body.pipe(counter);
    try {
      const [client, { Upload }] = await Promise.all([this.getClient(), loadStorage()]);
      const partSize = Math.max(DEFAULT_PART_SIZE, Math.ceil(((options.sizeHint ?? 0) * 1.25) / S3_MAX_PARTS / MIB) * MIB);
      const upload = new Upload({
        client,
        params: { Bucket: this.bucket, Key: this.objectKey(key), Body: counter, ContentType: 'application/octet-stream' },
        partSize,
        queueSize: UPLOAD_QUEUE_SIZE,
        leavePartsOnError: false, // abort the multipart upload: no orphaned parts, no partial object
      });
      await upload.done();
      return { bytes };
    } catch (err) {
      counter.destroy();
      if (!body.destroyed) body.destroy();
      if (bodyError !== undefined) throw bodyFailure(bodyError, key, this.location);
      if (err instanceof Error && /Exceeded \d+ parts/.test(err.message)) {
        throw new PitrError('s3_failed', `${key} is too large for S3 with ${DEFAULT_PART_SIZE / MIB} MiB parts: pass a size hint`, { cause: err });
      }
      throw this.fail(err, action, key);
    }
  }

  async writeSmall(key: string, data: string | Buffer): Promise<void> {
    assertKey(key);
    try {
      const [client, { PutObjectCommand }] = await Promise.all([this.getClient(), loadS3()]);
      await client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.objectKey(key),
          Body: typeof data === 'string' ? Buffer.from(data) : data,
          ContentType: key.endsWith('.json') ? 'application/json' : 'application/octet-stream',
        }),
      );
    } catch (err) {
      throw this.fail(err, `writing ${key} to ${this.location}`, key);
    }
  }

  private async getObject(key: string): Promise<{ body: Readable; length: number | undefined }> {
    assertKey(key);
    try {
      const [client, { GetObjectCommand }] = await Promise.all([this.getClient(), loadS3()]);
      const res = await client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      if (!(res.Body instanceof Readable)) throw new Error('S3 returned no object body');
      return { body: res.Body, length: res.ContentLength };
    } catch (err) {
      throw this.fail(err, `reading ${key} from ${this.location}`, key);
    }
  }

  async read(key: string): Promise<Readable> {
    const { body } = await this.getObject(key);
    return mapStreamErrors(body, (err) => this.fail(err, `reading ${key} from ${this.location}`, key));
  }

  async readSmall(key: string): Promise<Buffer> {
    const { body, length } = await this.getObject(key);
    if (length !== undefined && length > SMALL_OBJECT_LIMIT) {
      body.destroy();
      throw tooLarge(key, this.location, length);
    }
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of body) {
        const buf = toBuffer(chunk);
        total += buf.length;
        if (total > SMALL_OBJECT_LIMIT) {
          body.destroy();
          throw tooLarge(key, this.location, total);
        }
        chunks.push(buf);
      }
    } catch (err) {
      throw this.fail(err, `reading ${key} from ${this.location}`, key);
    }
    return Buffer.concat(chunks);
  }

  async list(prefix = ''): Promise<ExportObject[]> {
    assertPrefix(prefix);
    const out: ExportObject[] = [];
    try {
      const [client, { ListObjectsV2Command }] = await Promise.all([this.getClient(), loadS3()]);
      let token: string | undefined;
      do {
        const page = await client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.base + prefix, Delimiter: '/', ...(token ? { ContinuationToken: token } : {}) }),
        );
        for (const obj of page.Contents ?? []) {
          const key = obj.Key?.slice(this.base.length);
          if (!key || key.includes('/') || key.startsWith('.') || key.endsWith(PARTIAL_SUFFIX)) continue;
          out.push({ key, bytes: obj.Size ?? 0, modified: obj.LastModified ?? new Date(0) });
        }
        token = page.NextContinuationToken; // only present while more pages follow
      } while (token);
    } catch (err) {
      throw this.fail(err, `listing ${this.location}`);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async remove(key: string): Promise<void> {
    assertKey(key);
    try {
      const [client, { DeleteObjectCommand }] = await Promise.all([this.getClient(), loadS3()]);
      await client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
    } catch (err) {
      throw this.fail(err, `removing ${key} from ${this.location}`, key);
    }
  }
}
