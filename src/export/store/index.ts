/**
 * Where encrypted exports live: a local directory or an S3 prefix. An export is a few flat
 * objects under one location (`<name>.dump.enc`, `<name>.manifest.json`). Bodies are streamed
 * both ways so memory stays flat however big the dump; only readSmall/writeSmall buffer.
 *
 * A finished write is all-or-nothing: directories get a hidden `.partial` temp file that is
 * fsynced and renamed into place; S3 objects only appear when PutObject/CompleteMultipartUpload
 * succeeds, and a failed multipart upload is aborted.
 */
import type { Readable } from 'node:stream';
import { DirStore } from './dir.js';
import { parseExportLocation } from './location.js';
import { S3Store } from './s3.js';

export { assertKey, formatExportLocation, parseExportLocation, splitObjectUrl } from './location.js';
export { SMALL_OBJECT_LIMIT } from './shared.js';

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

export function openExportStore(location: string, options: ExportStoreOptions = {}): ExportStore {
  const parsed = parseExportLocation(location);
  return parsed.kind === 'dir' ? new DirStore(parsed.path) : new S3Store(parsed.bucket, parsed.prefix, options);
}
