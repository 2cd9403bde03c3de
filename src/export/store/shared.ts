import { open, type FileHandle } from 'node:fs/promises';
import { PassThrough, Readable } from 'node:stream';
import { PitrError } from '../../errors.js';
import { redactSecrets } from '../../redact.js';

export const SMALL_OBJECT_LIMIT = 16 * 1024 * 1024;
export const DEFAULT_PART_SIZE = 16 * 1024 * 1024;
export const MIB = 1024 * 1024;
export const S3_MAX_PARTS = 10_000;
export const UPLOAD_QUEUE_SIZE = 4;
export const PARTIAL_SUFFIX = '.partial';

function firstLine(text: string): string {
  return redactSecrets((text.split('\n').find((l) => l.trim()) ?? '').trim());
}

export function errorMessage(err: unknown): string {
  return firstLine(err instanceof Error ? err.message : String(err));
}

export function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk);
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new PitrError('export_write_failed', 'export body must be a byte stream (got an object-mode chunk)');
}

/** Re-emits `src` with its errors turned into PitrErrors; destroying the result destroys `src`. */
export function mapStreamErrors(src: Readable, map: (err: unknown) => Error): Readable {
  const out = new PassThrough();
  src.on('error', (err) => out.destroy(map(err)));
  out.once('close', () => {
    if (!src.destroyed) src.destroy();
  });
  src.pipe(out);
  return out;
}

/** The body failed (the producer's fault, e.g. pg_dump died) rather than the destination. */
export function bodyFailure(err: unknown, key: string, location: string): PitrError {
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

export function fsReason(err: unknown): string {
  const code = errnoCode(err);
  return (code && FS_REASONS[code]) ?? errorMessage(err);
}


export function missingDir(dir: string, cause: unknown): PitrError {
  return new PitrError('export_location_missing', `export directory ${dir} does not exist`, { cause });
}

export function tooLarge(key: string, location: string, size: number): PitrError {
  return new PitrError('export_too_large', `${key} in ${location} is ${size} bytes, too large to be a manifest (limit ${SMALL_OBJECT_LIMIT})`);
}

/** Makes a rename/unlink durable. Some file systems cannot fsync a directory; that is not fatal. */
export async function syncDir(dir: string): Promise<void> {
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
