import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PitrError } from '../../src/errors.js';
import { openExportStore, splitObjectUrl, type ExportStore } from '../../src/export/store/index.js';
import { startS3, type TestS3 } from '../support/s3.js';

const MiB = 1024 * 1024;

let s3: TestS3;
let root: string;
const savedEnv: Record<string, string | undefined> = {};

beforeAll(async () => {
  [s3, root] = await Promise.all([startS3(), mkdtemp(join(tmpdir(), 'pitr-export-store-'))]);
  for (const [k, v] of Object.entries(s3.env)) {
    savedEnv[k] = process.env[k];
    process.env[k] = v;
  }
});

afterAll(async () => {
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await Promise.all([s3?.stop(), root && rm(root, { recursive: true, force: true })]);
});

/** A byte stream of `size` random bytes; `digest()` is the sha256 of what was produced. `failAt` makes it error there. */
function generated(size: number, failAt?: number): { body: Readable; digest: () => string; produced: () => number } {
  const hash = createHash('sha256');
  let produced = 0;
  async function* chunks(): AsyncGenerator<Buffer> {
    const block = 256 * 1024;
    while (produced < size) {
      if (failAt !== undefined && produced >= failAt) throw new Error('producer died half-way');
      const chunk = randomBytes(Math.min(block, size - produced));
      hash.update(chunk);
      produced += chunk.length;
      yield chunk;
    }
  }
  let digest: string | undefined;
  return { body: Readable.from(chunks(), { objectMode: false }), digest: () => (digest ??= hash.digest('hex')), produced: () => produced };
}

async function sha256(stream: Readable): Promise<{ hex: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { hex: hash.digest('hex'), bytes };
}

async function codeOf(promise: Promise<unknown>): Promise<PitrError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected a PitrError').toBeInstanceOf(PitrError);
  const pe = err as PitrError;
  expect(pe.message).not.toContain('\n');
  return pe;
}

let counter = 0;
const kinds: { kind: 'dir' | 's3'; open: () => ExportStore }[] = [
  { kind: 'dir', open: () => openExportStore(join(root, `loc-${++counter}`, 'nested')) },
  { kind: 's3', open: () => openExportStore(`s3://${s3.bucket}/exports/loc-${++counter}`, { s3Endpoint: s3.endpoint }) },
];

describe.each(kinds)('export store contract: $kind', ({ kind, open }) => {
  it('streams 40 MiB across several parts and reads back identical bytes', async () => {
    const store = open();
    try {
      const size = 40 * MiB;
      const src = generated(size);
      const progress: number[] = [];
      const { bytes } = await store.write('big.dump.enc', src.body, { onProgress: (b) => progress.push(b) });
      expect(bytes).toBe(size);
      expect(progress.at(-1)).toBe(size);
      expect(progress.every((b, i) => i === 0 || b > progress[i - 1]!)).toBe(true);
      const back = await sha256(await store.read('big.dump.enc'));
      expect(back).toEqual({ hex: src.digest(), bytes: size });
      expect((await store.list()).map((o) => [o.key, o.bytes])).toEqual([['big.dump.enc', size]]);
    } finally {
      store.close();
    }
  });

  it('writeSmall/readSmall round-trip and overwrite', async () => {
    const store = open();
    try {
      const manifest = JSON.stringify({ name: 'nightly', tables: 3, note: 'ünïcode' });
      await store.writeSmall('nightly.manifest.json', manifest);
      expect((await store.readSmall('nightly.manifest.json')).toString('utf8')).toBe(manifest);
      await store.writeSmall('nightly.manifest.json', Buffer.from('{"v":2}'));
      expect((await store.readSmall('nightly.manifest.json')).toString()).toBe('{"v":2}');
      await store.writeSmall('empty.manifest.json', '');
      expect((await store.readSmall('empty.manifest.json')).length).toBe(0);
    } finally {
      store.close();
    }
  });

  it('lists objects with sizes, sorted, filtered by prefix; removes them', async () => {
    const store = open();
    try {
      const before = Date.now();
      await store.writeSmall('b.manifest.json', '12345');
      await store.writeSmall('a.manifest.json', '1');
      await store.write('a.dump.enc', Readable.from([Buffer.alloc(1000, 7)]));
      const all = await store.list();
      expect(all.map((o) => [o.key, o.bytes])).toEqual([
        ['a.dump.enc', 1000],
        ['a.manifest.json', 1],
        ['b.manifest.json', 5],
      ]);
      for (const o of all) expect(o.modified.getTime()).toBeGreaterThan(before - 5_000);
      expect((await store.list('a.')).map((o) => o.key)).toEqual(['a.dump.enc', 'a.manifest.json']);
      expect(await store.list('zzz')).toEqual([]);

      await store.remove('a.dump.enc');
      expect((await store.list()).map((o) => o.key)).toEqual(['a.manifest.json', 'b.manifest.json']);
      expect((await codeOf(store.read('a.dump.enc'))).code).toBe('export_not_found');
      await store.remove('a.dump.enc'); // idempotent
    } finally {
      store.close();
    }
  });

  it('a missing key is export_not_found for read and readSmall', async () => {
    const store = open();
    try {
      await store.writeSmall('present.manifest.json', '{}');
      const e1 = await codeOf(store.read('absent.dump.enc'));
      expect(e1.code).toBe('export_not_found');
      expect(e1.message).toContain('absent.dump.enc');
      expect((await codeOf(store.readSmall('absent.manifest.json'))).code).toBe('export_not_found');
    } finally {
      store.close();
    }
  });

  it('a body that fails half-way leaves nothing visible, and an older object intact', async () => {
    const store = open();
    try {
      await store.writeSmall('keep.dump.enc', 'old version');
      for (const key of ['fresh.dump.enc', 'keep.dump.enc']) {
        const src = generated(40 * MiB, 20 * MiB);
        const err = await codeOf(store.write(key, src.body));
        expect(err.code).toBe('export_write_failed');
        expect(err.message).toContain('producer died half-way');
        expect(src.produced()).toBeGreaterThanOrEqual(20 * MiB);
        expect(src.body.destroyed).toBe(true);
      }
      expect((await store.list()).map((o) => [o.key, o.bytes])).toEqual([['keep.dump.enc', 11]]);
      expect((await store.readSmall('keep.dump.enc')).toString()).toBe('old version');
      expect((await codeOf(store.read('fresh.dump.enc'))).code).toBe('export_not_found');
      if (kind === 'dir') expect(await readdir(store.location)).toEqual(['keep.dump.enc']); // no .partial left behind
    } finally {
      store.close();
    }
  });

  it('rejects keys that are not flat object names', async () => {
    const store = open();
    try {
      for (const key of ['', '../x', 'a/b', '.hidden', 'x.partial', 'a\nb']) {
        const err = await codeOf(store.writeSmall(key, 'x'));
        expect(err.code).toBe('bad_export_key');
        expect(err.exitCode).toBe(2);
      }
    } finally {
      store.close();
    }
  });
});

describe('directory stores', () => {
  it('creates the directory on first write; a missing directory is one error for read and list', async () => {
    const dir = join(root, 'not', 'yet', 'there');
    const store = openExportStore(dir);
    expect(store.location).toBe(dir);
    expect((await codeOf(store.read('x.dump.enc'))).code).toBe('export_location_missing');
    expect((await codeOf(store.readSmall('x.manifest.json'))).code).toBe('export_location_missing');
    expect((await codeOf(store.list())).code).toBe('export_location_missing');
    await store.writeSmall('x.manifest.json', '{}');
    expect((await store.list()).map((o) => o.key)).toEqual(['x.manifest.json']);
  });

  it('never lists temp files, and cannot write where a file is in the way', async () => {
    const dir = join(root, 'with-temp');
    const store = openExportStore(dir);
    await store.writeSmall('real.manifest.json', '{}');
    await writeFile(join(dir, '.real.dump.enc.abc.partial'), 'junk');
    expect((await store.list()).map((o) => o.key)).toEqual(['real.manifest.json']);

    const blocked = openExportStore(join(dir, 'real.manifest.json', 'sub'));
    const err = await codeOf(blocked.write('a.dump.enc', Readable.from([Buffer.from('x')])));
    expect(err.code).toBe('export_write_failed');
  });

  it('an object URL splits into a store and a key that reads it', async () => {
    const dir = join(root, 'split');
    await openExportStore(dir).writeSmall('n.manifest.json', '{"ok":true}');
    const { location, key } = splitObjectUrl(join(dir, 'n.manifest.json'));
    expect(JSON.parse((await openExportStore(location).readSmall(key)).toString())).toEqual({ ok: true });
  });
});

describe('S3 stores', () => {
  it('an object URL splits into a store and a key that reads it', async () => {
    const store = openExportStore(`s3://${s3.bucket}/split/deep`, { s3Endpoint: s3.endpoint });
    try {
      await store.writeSmall('n.manifest.json', '{"ok":true}');
      const { location, key } = splitObjectUrl(`s3://${s3.bucket}/split/deep/n.manifest.json`);
      expect(location).toBe(store.location);
      const again = openExportStore(location, { s3Endpoint: s3.endpoint });
      expect(JSON.parse((await again.readSmall(key)).toString())).toEqual({ ok: true });
      again.close();
    } finally {
      store.close();
    }
  });

  it('a missing bucket is s3_no_bucket', async () => {
    const store = openExportStore('s3://no-such-bucket-here/x', { s3Endpoint: s3.endpoint });
    try {
      const err = await codeOf(store.list());
      expect(err.code).toBe('s3_no_bucket');
      expect(err.message).toContain('no-such-bucket-here');
      expect((await codeOf(store.write('a.dump.enc', Readable.from([Buffer.from('x')])))).code).toBe('s3_no_bucket');
      // Multipart: S3 fails while the body is still flowing; the S3 error wins, the body is stopped.
      // (The uploader reads ahead at most queueSize parts, so far less than 200 MiB is produced.)
      const big = generated(200 * MiB);
      expect((await codeOf(store.write('b.dump.enc', big.body))).code).toBe('s3_no_bucket');
      expect(big.body.destroyed).toBe(true);
      expect(big.produced()).toBeLessThan(100 * MiB);
    } finally {
      store.close();
    }
  });

  it('refused credentials are one line and never show the secret', async () => {
    const secret = 'wrong-Secret-Key-0123456789abcdef';
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, key: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = 'AKIAUNKNOWNKEY00000';
    process.env.AWS_SECRET_ACCESS_KEY = secret;
    const store = openExportStore(`s3://${s3.bucket}/creds`, { s3Endpoint: s3.endpoint });
    try {
      for (const attempt of [() => store.list(), () => store.readSmall('a.manifest.json'), () => store.write('a.dump.enc', generated(MiB).body)]) {
        const err = await codeOf(attempt());
        expect(err.code).toBe('s3_access_denied');
        expect(err.message).toMatch(/S3 refused the credentials \(InvalidAccessKeyId\)/);
        expect(`${err.message} ${err.detail ?? ''}`).not.toContain(secret);
      }
    } finally {
      store.close();
      process.env.AWS_ACCESS_KEY_ID = saved.id;
      process.env.AWS_SECRET_ACCESS_KEY = saved.key;
    }
  });

  it('an unreachable endpoint is s3_unreachable naming the endpoint', async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const endpoint = `http://127.0.0.1:${port}`;
    const store = openExportStore(`s3://${s3.bucket}/x`, { s3Endpoint: endpoint });
    try {
      for (const attempt of [() => store.readSmall('a.manifest.json'), () => store.write('a.dump.enc', generated(MiB).body), () => store.list()]) {
        const err = await codeOf(attempt());
        expect(err.code).toBe('s3_unreachable');
        expect(err.message).toContain(`cannot reach S3 endpoint ${endpoint} (ECONNREFUSED)`);
      }
    } finally {
      store.close();
    }
  });

  it('rejects an endpoint that is not an http(s) URL, without echoing its password', () => {
    expect(() => openExportStore('s3://bucket/x', { s3Endpoint: 'ftp://h' })).toThrowError(/http:\/\/ or https:\/\//);
    // Both refusals: a URL of another scheme, and text that is no URL at all.
    for (const [s3Endpoint, says] of [
      ['ftp://u:hunter2-pass@h', 'use http:// or https://'],
      ['http://u:hunter2-pass@[not-a-host', 'give a URL like https://host:port'],
    ] as const) {
      let thrown: unknown;
      try {
        openExportStore('s3://bucket/x', { s3Endpoint }).close();
      } catch (err) {
        thrown = err;
      }
      expect(thrown, `${s3Endpoint} was accepted`).toBeInstanceOf(PitrError);
      const err = thrown as PitrError;
      expect([err.code, err.exitCode]).toEqual(['bad_s3_endpoint', 2]);
      expect(err.message).toContain(says);
      // The endpoint is still recognisable, only its password is masked.
      expect(err.message).toContain('u:********@');
      expect(err.message).not.toContain('hunter2-pass');
    }
  });
});
