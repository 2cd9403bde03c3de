import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { badInput } from '../../errors.js';
import { redactSecrets } from '../../redact.js';
import type { ExportLocation } from './index.js';
import { PARTIAL_SUFFIX } from './shared.js';

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

export function assertPrefix(prefix: string): void {
  if (prefix) {
    if (/[/\\]/.test(prefix) || CONTROL.test(prefix)) throw badInput('bad_export_key', `invalid export name prefix "${prefix.replace(CONTROL, '?')}"`);
  }
}
