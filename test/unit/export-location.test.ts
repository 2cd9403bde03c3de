import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PitrError } from '../../src/errors.js';
import { assertKey, formatExportLocation, parseExportLocation, splitObjectUrl } from '../../src/export/store/index.js';

function badLocation(fn: () => unknown): PitrError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(PitrError);
  const err = caught as PitrError;
  expect(err.exitCode).toBe(2);
  expect(err.message).not.toContain('\n');
  return err;
}

describe('parseExportLocation', () => {
  it('directories: absolute, relative (resolved), file:// URLs, odd but legal names', () => {
    expect(parseExportLocation('/var/backups/pitr')).toEqual({ kind: 'dir', path: '/var/backups/pitr' });
    expect(parseExportLocation('exports/./x/')).toEqual({ kind: 'dir', path: resolve('exports/x') });
    expect(parseExportLocation('  /tmp/x  ')).toEqual({ kind: 'dir', path: '/tmp/x' });
    expect(parseExportLocation('file:///srv/exports')).toEqual({ kind: 'dir', path: '/srv/exports' });
    expect(parseExportLocation('backups:2024/x')).toEqual({ kind: 'dir', path: resolve('backups:2024/x') });
  });

  it('S3: bucket only, prefixes normalised, scheme case-insensitive', () => {
    expect(parseExportLocation('s3://my-bucket')).toEqual({ kind: 's3', bucket: 'my-bucket', prefix: '' });
    expect(parseExportLocation('s3://my-bucket/')).toEqual({ kind: 's3', bucket: 'my-bucket', prefix: '' });
    expect(parseExportLocation('S3://my.bucket.01//a//b/')).toEqual({ kind: 's3', bucket: 'my.bucket.01', prefix: 'a/b' });
    expect(formatExportLocation(parseExportLocation('s3://b-1/a//b/'))).toBe('s3://b-1/a/b');
    expect(formatExportLocation(parseExportLocation('s3://b-1'))).toBe('s3://b-1');
  });

  it('rejects S3 locations without a valid bucket', () => {
    for (const bad of ['s3://', 's3:///prefix', 's3:/bucket', 's3:bucket', 's3://ab', 's3://My-Bucket', 's3://under_score', 's3://-lead', 's3://trail-', 's3://a..b', 's3://a.-b', 's3://192.168.1.1', `s3://${'a'.repeat(64)}`]) {
      expect(badLocation(() => parseExportLocation(bad)).code, bad).toBe('bad_export_location');
    }
    expect(badLocation(() => parseExportLocation('s3://')).message).toMatch(/no bucket/);
  });

  it('rejects other schemes, empty input, query strings, dot segments and control characters', () => {
    for (const bad of ['', '   ', 'gs://bucket/x', 'https://bucket.s3.amazonaws.com/x', 's3://bucket/x?versionId=1', 's3://bucket/x#y', 's3://bucket/a/../b', 's3://bucket/./b', '/tmp/a\u0000b']) {
      expect(badLocation(() => parseExportLocation(bad)).code, JSON.stringify(bad)).toBe('bad_export_location');
    }
    expect(badLocation(() => parseExportLocation('gs://bucket/x')).message).toMatch(/unsupported export location scheme "gs:"/);
  });

  it('refuses credentials in the URL and never echoes them', () => {
    const err = badLocation(() => parseExportLocation('s3://AKIAEXAMPLE:wJalrXUtnFEMI-secret@bucket/x'));
    expect(err.code).toBe('bad_export_location');
    expect(err.message).not.toContain('wJalrXUtnFEMI-secret');
    expect(err.message).not.toContain('AKIAEXAMPLE');
  });
});

describe('splitObjectUrl', () => {
  it('splits S3 object URLs into location and key', () => {
    expect(splitObjectUrl('s3://bucket-a/prefix/deeper/nightly.dump.enc')).toEqual({ location: 's3://bucket-a/prefix/deeper', key: 'nightly.dump.enc' });
    expect(splitObjectUrl('s3://bucket-a/nightly.dump.enc')).toEqual({ location: 's3://bucket-a', key: 'nightly.dump.enc' });
  });

  it('splits paths into directory and file name', () => {
    expect(splitObjectUrl('/srv/exports/nightly.dump.enc')).toEqual({ location: '/srv/exports', key: 'nightly.dump.enc' });
    expect(splitObjectUrl('rel/n.manifest.json')).toEqual({ location: resolve('rel'), key: 'n.manifest.json' });
  });

  it('refuses URLs that name a bucket or folder', () => {
    for (const bad of ['s3://bucket-a', 's3://bucket-a/', 's3://bucket-a/prefix/', '/srv/exports/', 's3://bucket-a/p/.hidden']) {
      expect(badLocation(() => splitObjectUrl(bad)).code, bad).toMatch(/^bad_export_(location|key)$/);
    }
  });
});

describe('assertKey', () => {
  it('accepts flat names and refuses separators, hidden and temp names', () => {
    for (const ok of ['nightly.dump.enc', 'n-2024-01-01T00:00:00Z.manifest.json', 'a b', 'ünï']) expect(() => assertKey(ok)).not.toThrow();
    for (const bad of ['', '.', '..', 'a/b', 'a\\b', '.x', 'x.partial', 'tab\there', 'x'.repeat(201)]) {
      expect(badLocation(() => assertKey(bad)).code, JSON.stringify(bad)).toBe('bad_export_key');
    }
  });
});
