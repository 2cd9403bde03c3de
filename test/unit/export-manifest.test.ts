import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson, keyId, openManifest, signManifest } from '../../src/export/manifest.js';
import { checkManifestNamesObject, exportObjectOf, parseExportRef, readExportManifest } from '../../src/export/open.js';
import { listIn } from '../../src/export/list.js';
import { isCode, mib, objectPath, oneLine, round, throwIfAborted, EXPORT_NAME } from '../../src/export/common.js';
import type { ExportObject, ExportStore } from '../../src/export/store/index.js';
import { PitrError } from '../../src/errors.js';
import { refusal } from '../support/refusal.js';
import { unsigned } from '../support/manifests.js';

const key = randomBytes(32);
const otherKey = randomBytes(32);

/** An in-memory store: what listIn and readExportManifest read through (no database involved). */
function memoryStore(objects: Record<string, { text: string; modified?: string }>, unreadable: string[] = []): ExportStore {
  const list: ExportObject[] = Object.entries(objects).map(([k, v]) => ({ key: k, bytes: v.text.length, modified: new Date(v.modified ?? '2026-01-01T00:00:00Z') }));
  return {
    location: '/exports',
    kind: 'dir',
    write: () => Promise.reject(new Error('read-only')),
    writeSmall: () => Promise.reject(new Error('read-only')),
    read: () => Promise.reject(new Error('not used')),
    readSmall: (k: string) => {
      if (unreadable.includes(k)) return Promise.reject(new Error('EIO: i/o error\nsecond line'));
      const o = objects[k];
      return o ? Promise.resolve(Buffer.from(o.text)) : Promise.reject(new PitrError('export_not_found', `no ${k}`));
    },
    list: () => Promise.resolve(list),
    remove: () => Promise.resolve(),
    close: () => undefined,
  } as ExportStore;
}

describe('export manifest: signed, authenticated, tamper-evident', () => {
  it('round-trips: a signed manifest opens with the same key, from text or bytes', () => {
    const { manifest, text } = signManifest(unsigned('e1', {}, key), key);
    expect(manifest.hmac).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(openManifest(text, key, 'm')).toEqual(manifest);
    expect(openManifest(Buffer.from(text), key, 'm')).toEqual(manifest);
    expect(text.endsWith('\n')).toBe(true);
  });

  it('the HMAC covers the canonical form: key order and whitespace do not matter', () => {
    const { manifest } = signManifest(unsigned('e1', {}, key), key);
    const reordered = Object.fromEntries(Object.entries(manifest).reverse());
    expect(openManifest(JSON.stringify(reordered), key, 'm')).toEqual(manifest);
  });

  it('canonicalJson sorts keys at every level, drops undefined, keeps arrays in order', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: null }], c: undefined } })).toBe('{"a":{"d":[3,{"y":null,"z":1}]},"b":1}');
    expect(canonicalJson('x')).toBe('"x"');
    expect(canonicalJson(null)).toBe('null');
  });

  it('keyId is a stable 16-hex fingerprint that differs per key', () => {
    expect(keyId(key)).toMatch(/^[0-9a-f]{16}$/);
    expect(keyId(key)).toBe(keyId(Buffer.from(key)));
    expect(keyId(key)).not.toBe(keyId(otherKey));
  });

  it.each([
    ['not json', 'export_manifest_invalid', /not valid JSON/],
    ['null', 'export_manifest_invalid', /not a pitr export manifest/],
    ['{"format":"other"}', 'export_manifest_invalid', /not a pitr export manifest/],
    ['{"format":"pitr-export","version":2}', 'export_manifest_invalid', /version 2; this pitr reads version 1/],
  ])('refuses %s as %s (exit 1)', (text, code, message) => {
    const err = refusal(() => openManifest(text, key, 'where.json'));
    expect(err.code).toBe(code);
    expect(err.exitClass).toBe('failure');
    expect(err.message).toMatch(message);
  });

  it('a changed value is tampered, a field of the wrong shape too (naming the field)', () => {
    const { manifest } = signManifest(unsigned('e1', {}, key), key);
    const changed = refusal(() => openManifest(JSON.stringify({ ...manifest, database: 'other' }), key, 'm.json'));
    expect(changed.code).toBe('export_manifest_tampered');
    expect(changed.message).toMatch(/HMAC does not match/);
    const shape = refusal(() => openManifest(JSON.stringify({ ...manifest, tables: [{ schema: 'p', name: 't', rows: -1 }] }), key, 'm.json'));
    expect(shape.code).toBe('export_manifest_tampered');
    expect(shape.message).toContain('field tables.0.rows');
    const extra = refusal(() => openManifest(JSON.stringify({ ...manifest, extra: 1 }), key, 'm.json'));
    expect(extra.code).toBe('export_manifest_tampered');
  });

  it('another key is a wrong key, naming both key ids and no secret', () => {
    const { text } = signManifest(unsigned('e1', {}, key), key);
    const err = refusal(() => openManifest(text, otherKey, 'm'));
    expect(err.code).toBe('export_wrong_key');
    expect(err.message).toContain(keyId(key));
    expect(err.message).toContain(keyId(otherKey));
    expect(err.message).not.toContain(key.toString('hex'));
  });
});

describe('export references', () => {
  it.each([
    ['/exports/e1', '/exports', 'e1'],
    ['/exports/e1.dump.enc', '/exports', 'e1'],
    ['/exports/e1.manifest.json', '/exports', 'e1'],
    ['s3://bucket/pre/fix/e1.dump.enc', 's3://bucket/pre/fix', 'e1'],
  ])('%s → %s + %s', (object, location, name) => {
    const ref = parseExportRef(object);
    expect(ref).toEqual({ location, name, dumpKey: `${name}.dump.enc`, manifestKey: `${name}.manifest.json` });
    expect(exportObjectOf(ref)).toBe(`${location}/${name}`);
  });

  it('a bare suffix names no export', () => {
    expect(refusal(() => parseExportRef('/exports/.dump.enc')).exitClass).toBe('usage');
  });

  it('exportObjectOf does not double a trailing slash', () => {
    expect(exportObjectOf({ location: 's3://b/p/', name: 'e1' })).toBe('s3://b/p/e1');
  });

  it('a manifest of another export (swapped or renamed) is refused', () => {
    const { manifest } = signManifest(unsigned('e1', {}, key), key);
    expect(() => checkManifestNamesObject(manifest, { name: 'e1', dumpKey: 'e1.dump.enc' }, 'w')).not.toThrow();
    const err = refusal(() => checkManifestNamesObject(manifest, { name: 'e2', dumpKey: 'e2.dump.enc' }, 'w'));
    expect(err.code).toBe('export_manifest_mismatch');
    expect(err.exitClass).toBe('failure');
  });

  it('readExportManifest authenticates and checks the name; a missing manifest is an unfinished export', async () => {
    const { manifest, text } = signManifest(unsigned('e1', {}, key), key);
    const store = memoryStore({ 'e1.manifest.json': { text }, 'e2.manifest.json': { text } });
    await expect(readExportManifest(store, parseExportRef('/exports/e1'), key)).resolves.toEqual(manifest);
    await expect(readExportManifest(store, parseExportRef('/exports/e2'), key)).rejects.toMatchObject({ code: 'export_manifest_mismatch' });
    await expect(readExportManifest(store, parseExportRef('/exports/e3'), key)).rejects.toMatchObject({ code: 'export_incomplete' });
    const broken = { ...store, readSmall: () => Promise.reject(new PitrError('s3_denied', 'denied')) } as ExportStore;
    await expect(readExportManifest(broken, parseExportRef('/exports/e1'), key)).rejects.toMatchObject({ code: 's3_denied' });
  });
});

describe('export list: newest first, each with why it is not usable', () => {
  const good = signManifest(unsigned('good', { createdAt: '2026-11-25T10:00:00.000Z' }, key), key).text;
  const newer = signManifest(unsigned('newer', { createdAt: '2026-11-26T10:00:00.000Z' }, key), key).text;
  const foreign = signManifest(unsigned('foreign', { createdAt: '2026-11-24T10:00:00.000Z' }, otherKey), otherKey).text;
  const swapped = signManifest(unsigned('good', { createdAt: '2026-11-20T10:00:00.000Z' }, key), key).text;
  const objects = {
    'good.dump.enc': { text: 'x'.repeat(40) },
    'good.manifest.json': { text: good },
    'newer.manifest.json': { text: newer },
    'foreign.dump.enc': { text: 'y' },
    'foreign.manifest.json': { text: foreign },
    'swapped.dump.enc': { text: 'z' },
    'swapped.manifest.json': { text: swapped },
    'unfinished.dump.enc': { text: 'w', modified: '2026-11-27T00:00:00Z' },
    'garbage.dump.enc': { text: 'v', modified: '2026-10-01T00:00:00Z' },
    'garbage.manifest.json': { text: '{not json', modified: '2026-10-01T00:00:00Z' },
    'io.manifest.json': { text: '', modified: '2026-09-01T00:00:00Z' },
    'README.txt': { text: 'ignored' },
  };

  it('with a key: authenticated or a problem, sorted by createdAt', async () => {
    const list = await listIn(memoryStore(objects, ['io.manifest.json']), key);
    expect(list.map((e) => e.name)).toEqual(['unfinished', 'newer', 'good', 'foreign', 'swapped', 'garbage', 'io']);
    const by = Object.fromEntries(list.map((e) => [e.name, e]));
    expect(by.good).toMatchObject({ authenticated: true, problem: null, tables: 2, rows: 7, bytes: 40, database: 'app', object: '/exports/good', keyId: keyId(key) });
    expect(by.good!.manifest?.name).toBe('good');
    expect(by.unfinished).toMatchObject({ authenticated: false, problem: 'no manifest: the export did not finish', createdAt: '2026-11-27T00:00:00.000Z' });
    expect(by.newer).toMatchObject({ authenticated: true, problem: 'the dump newer.dump.enc is missing', bytes: null });
    expect(by.foreign!.problem).toMatch(/wrong encryption key/);
    expect(by.foreign).toMatchObject({ authenticated: false, keyId: keyId(otherKey), manifest: null, rows: 7 });
    expect(by.swapped!.problem).toMatch(/belongs to export good/);
    expect(by.garbage!.problem).toMatch(/not valid JSON/);
    expect(by.garbage!.database).toBeNull();
    expect(by.io!.problem).toBe('cannot read the manifest: EIO: i/o error');
  });

  it('without a key: fields as stored, authentication unknown', async () => {
    const list = await listIn(memoryStore(objects), undefined);
    const by = Object.fromEntries(list.map((e) => [e.name, e]));
    expect(by.foreign).toMatchObject({ authenticated: null, problem: null, database: 'app', manifest: null });
    expect(by.garbage!.problem).toMatch(/^unreadable manifest: /);
  });
});

describe('export common helpers', () => {
  it('objectPath joins directories and s3 prefixes', () => {
    expect(objectPath({ kind: 'dir', location: '/x/y' } as ExportStore, 'k')).toBe('/x/y/k');
    expect(objectPath({ kind: 's3', location: 's3://b/p' } as ExportStore, 'k')).toBe('s3://b/p/k');
  });

  it('isCode matches PitrError codes only', () => {
    expect(isCode(new PitrError('a', 'm'), 'a')).toBe(true);
    expect(isCode(new PitrError('a', 'm'), 'b')).toBe(false);
    expect(isCode(Object.assign(new Error('m'), { code: 'a' }), 'a')).toBe(false);
  });

  it('oneLine keeps the first non-blank line, redacted', () => {
    expect(oneLine(new Error('\n  first  \nsecond'))).toBe('first');
    expect(oneLine('connect postgres://u:hunter2@h/db failed')).not.toContain('hunter2');
    expect(oneLine(new Error('   '))).toBe('unknown error');
  });

  it('throwIfAborted stops only an aborted run, saying what', () => {
    expect(() => throwIfAborted(undefined)).not.toThrow();
    expect(() => throwIfAborted(new AbortController().signal)).not.toThrow();
    const c = new AbortController();
    c.abort();
    const err = refusal(() => throwIfAborted(c.signal, 'export stopped'));
    expect(err.code).toBe('interrupted');
    expect(err.message).toBe('export stopped');
  });

  it('mib, round and EXPORT_NAME', () => {
    expect(mib(1.5 * 1024 * 1024)).toBe('1.5');
    expect(round(1.23456)).toBe(1.235);
    expect(round(1.25, 1)).toBe(1.3);
    expect(EXPORT_NAME.test('pitr-app-20261125T140300Z')).toBe(true);
    expect(EXPORT_NAME.test('.hidden')).toBe(false);
    expect(EXPORT_NAME.test('a/b')).toBe(false);
  });
});
