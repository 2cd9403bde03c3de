import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import type { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DEFAULT_CHUNK_BYTES,
  ENCRYPTION_HEADER_BYTES,
  createDecryptStream,
  createEncryptStream,
  generateEncryptionKey,
  loadEncryptionKey,
  looksEncrypted,
} from '../../src/export/encryption.js';
import { PitrError } from '../../src/errors.js';
import { redactSecrets } from '../../src/redact.js';

const KEY = Buffer.from(generateEncryptionKey(), 'hex');
const OTHER_KEY = Buffer.from(generateEncryptionKey(), 'hex');
const CHUNK = 64;
const TAG = 16;
const WORD = 4;

/** Feed `pieces` through `stream`; collect what came out, and the error if any. */
async function run(stream: Transform, pieces: Buffer[]): Promise<{ out: Buffer; error: unknown }> {
  const got: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      got.push(chunk);
      cb();
    },
  });
  let error: unknown;
  try {
    await pipeline(Readable.from(pieces), stream, sink);
  } catch (err) {
    error = err;
  }
  return { out: Buffer.concat(got), error };
}

/** Split `buf` at the given cut points (any numbers; taken modulo the length). */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  if (buf.length === 0) return [buf];
  const points = [...new Set(cuts.map((c) => c % buf.length))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    if (p > prev) pieces.push(buf.subarray(prev, p));
    prev = p;
  }
  pieces.push(buf.subarray(prev));
  return pieces;
}

async function encrypt(plain: Buffer, chunkBytes = CHUNK, cuts: number[] = [], key = KEY): Promise<Buffer> {
  const { out, error } = await run(createEncryptStream(key, { chunkBytes }), split(plain, cuts));
  if (error) throw error;
  return out;
}

async function decrypt(cipher: Buffer, cuts: number[] = [], key = KEY): Promise<{ out: Buffer; error: unknown }> {
  return run(createDecryptStream(key), split(cipher, cuts));
}

function codeOf(error: unknown): string | undefined {
  return error instanceof PitrError ? error.code : undefined;
}

/** Decryption output before an error must be the plaintext up to some chunk boundary. */
function expectAuthenticatedPrefix(out: Buffer, plain: Buffer, chunkBytes: number): void {
  expect(out.length % chunkBytes).toBe(0);
  expect(out.length).toBeLessThanOrEqual(plain.length);
  expect(out.equals(plain.subarray(0, out.length))).toBe(true);
}

/** Byte offset of chunk i in a file with chunk size c. */
const chunkOffset = (i: number, c: number) => ENCRYPTION_HEADER_BYTES + i * (WORD + c + TAG);

describe('export encryption: round trips', () => {
  for (const size of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3.5 * CHUNK, 10 * CHUNK]) {
    it(`round-trips ${size} bytes`, async () => {
      const plain = randomBytes(size);
      const cipher = await encrypt(plain);
      const chunks = Math.floor(size / CHUNK) + 1; // the last is final, possibly empty
      expect(cipher.length).toBe(ENCRYPTION_HEADER_BYTES + chunks * (WORD + TAG) + size);
      expect(looksEncrypted(cipher)).toBe(true);
      const { out, error } = await decrypt(cipher);
      expect(error).toBeUndefined();
      expect(out.equals(plain)).toBe(true);
    });
  }

  it('round-trips random data, chunk sizes and write splits (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 2000 }),
        fc.integer({ min: 1, max: 300 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        async (bytes, chunkBytes, encCuts, decCuts) => {
          const plain = Buffer.from(bytes);
          const cipher = await encrypt(plain, chunkBytes, encCuts);
          const { out, error } = await decrypt(cipher, decCuts);
          expect(error).toBeUndefined();
          expect(out.equals(plain)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('uses a fresh salt and nonce prefix per file', async () => {
    const plain = Buffer.alloc(100, 7);
    const a = await encrypt(plain);
    const b = await encrypt(plain);
    expect(a.subarray(12, 52).equals(b.subarray(12, 52))).toBe(false);
    expect(a.subarray(ENCRYPTION_HEADER_BYTES).equals(b.subarray(ENCRYPTION_HEADER_BYTES))).toBe(false);
  });

  it('accepts string writes and the default chunk size', async () => {
    const { out, error } = await run(createEncryptStream(KEY), [Buffer.from('hello ')]);
    expect(error).toBeUndefined();
    expect(out.readUInt32BE(8)).toBe(DEFAULT_CHUNK_BYTES);
    expect((await decrypt(out)).out.toString()).toBe('hello ');
  });

  it('rejects bad keys and chunk sizes up front', () => {
    expect(() => createEncryptStream(Buffer.alloc(16))).toThrow(PitrError);
    expect(() => createDecryptStream(Buffer.alloc(31))).toThrow(PitrError);
    expect(() => createEncryptStream(KEY, { chunkBytes: 0 })).toThrow(/chunk size/);
    expect(() => createEncryptStream(KEY, { chunkBytes: 1.5 })).toThrow(/chunk size/);
    expect(() => createEncryptStream(KEY, { chunkBytes: (64 << 20) + 1 })).toThrow(/chunk size/);
  });

  it('prints throughput for 64 MiB at the default chunk size', async () => {
    const total = 64 << 20;
    const piece = randomBytes(64 * 1024);
    const pieces = Array.from({ length: total / piece.length }, () => piece);
    const t0 = performance.now();
    const parts: Buffer[] = [];
    await pipeline(
      Readable.from(pieces),
      createEncryptStream(KEY),
      new Writable({
        write(c: Buffer, _e, cb) {
          parts.push(c);
          cb();
        },
      }),
    );
    const t1 = performance.now();
    let n = 0;
    await pipeline(
      Readable.from(parts),
      createDecryptStream(KEY),
      new Writable({
        write(c: Buffer, _e, cb) {
          n += c.length;
          cb();
        },
      }),
    );
    const t2 = performance.now();
    expect(n).toBe(total);
    const mibs = (ms: number) => (64 / (ms / 1000)).toFixed(0);
    process.stdout.write(`encryption throughput: encrypt ${mibs(t1 - t0)} MiB/s, decrypt ${mibs(t2 - t1)} MiB/s\n`);
  });
});

describe('export encryption: detecting tampering', () => {
  it('reports a wrong key before decrypting anything', async () => {
    const cipher = await encrypt(randomBytes(5 * CHUNK));
    const { out, error } = await decrypt(cipher, [], OTHER_KEY);
    expect(codeOf(error)).toBe('export_wrong_key');
    expect((error as PitrError).exitCode).toBe(1);
    expect(out.length).toBe(0);
  });

  it('reports a plain pg_dump file as not encrypted, and a newer version as such', async () => {
    const dump = Buffer.concat([Buffer.from('PGDMP'), randomBytes(200)]);
    expect(codeOf((await decrypt(dump)).error)).toBe('export_not_encrypted');
    expect(looksEncrypted(dump)).toBe(false);
    const cipher = await encrypt(randomBytes(10));
    cipher[7] = 2;
    const { error } = await decrypt(cipher);
    expect(codeOf(error)).toBe('export_bad_version');
    expect((error as Error).message).not.toContain('\n');
  });

  it('detects any single-byte change, never emitting unauthenticated plaintext (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 600 }),
        fc.integer({ min: 1, max: 100 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        async (bytes, chunkBytes, rawPos, xor, cuts) => {
          const plain = Buffer.from(bytes);
          const cipher = await encrypt(plain, chunkBytes);
          const pos = rawPos % cipher.length;
          cipher[pos]! ^= xor;
          const { out, error } = await decrypt(cipher, cuts);
          expect(error).toBeInstanceOf(PitrError);
          expectAuthenticatedPrefix(out, plain, chunkBytes);
          const finalWord = cipher.length - TAG - (plain.length % chunkBytes) - WORD;
          let expected: string[];
          if (pos < 7) expected = ['export_not_encrypted'];
          else if (pos === 7) expected = ['export_bad_version'];
          else if (pos < ENCRYPTION_HEADER_BYTES) expected = ['export_tampered'];
          // A larger length in the final chunk's word makes the decoder wait for bytes that never come.
          else if (pos >= finalWord && pos < finalWord + WORD) expected = ['export_tampered', 'export_truncated'];
          else expected = ['export_tampered'];
          expect(expected).toContain(codeOf(error));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('reports every truncation as truncated, at chunk boundaries and inside chunks (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 600 }),
        fc.integer({ min: 1, max: 100 }),
        fc.nat(),
        fc.array(fc.nat(), { maxLength: 10 }),
        async (bytes, chunkBytes, rawLen, cuts) => {
          const plain = Buffer.from(bytes);
          const cipher = await encrypt(plain, chunkBytes);
          const cut = cipher.subarray(0, rawLen % cipher.length);
          const { out, error } = await decrypt(cut, cuts);
          expect(codeOf(error)).toBe('export_truncated');
          expectAuthenticatedPrefix(out, plain, chunkBytes);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('catches truncation exactly at each chunk boundary, after emitting only whole chunks', async () => {
    const plain = randomBytes(3.5 * CHUNK);
    const cipher = await encrypt(plain);
    for (let i = 0; i <= 3; i++) {
      const { out, error } = await decrypt(cipher.subarray(0, chunkOffset(i, CHUNK)));
      expect(codeOf(error)).toBe('export_truncated');
      expect((error as Error).message).toMatch(/truncated/);
      expect(out.equals(plain.subarray(0, i * CHUNK))).toBe(true);
    }
    // Also for a multiple of the chunk size, where the final chunk is empty.
    const even = randomBytes(2 * CHUNK);
    const evenCipher = await encrypt(even);
    const { out, error } = await decrypt(evenCipher.subarray(0, chunkOffset(2, CHUNK)));
    expect(codeOf(error)).toBe('export_truncated');
    expect(out.equals(even)).toBe(true);
    expect(codeOf((await decrypt(Buffer.alloc(0))).error)).toBe('export_truncated');
  });

  it('rejects bytes appended after the final chunk', async () => {
    const plain = randomBytes(2 * CHUNK + 5);
    const cipher = await encrypt(plain);
    for (const extra of [Buffer.from([0]), randomBytes(100), await encrypt(randomBytes(10))]) {
      const { error } = await decrypt(Buffer.concat([cipher, extra]));
      expect(codeOf(error)).toBe('export_tampered');
      expect((error as Error).message).toMatch(/after the final chunk/);
    }
  });

  it('rejects swapped, duplicated and dropped chunks as tampered', async () => {
    const plain = randomBytes(4 * CHUNK + 10);
    const cipher = await encrypt(plain);
    const size = WORD + CHUNK + TAG;
    const chunk = (i: number) => cipher.subarray(chunkOffset(i, CHUNK), chunkOffset(i, CHUNK) + size);
    const header = cipher.subarray(0, ENCRYPTION_HEADER_BYTES);
    const tail = cipher.subarray(chunkOffset(4, CHUNK));
    const variants: [Buffer, number][] = [
      [Buffer.concat([header, chunk(0), chunk(2), chunk(1), chunk(3), tail]), 1], // swapped
      [Buffer.concat([header, chunk(0), chunk(1), chunk(1), chunk(2), chunk(3), tail]), 2], // duplicated
      [Buffer.concat([header, chunk(0), chunk(2), chunk(3), tail]), 1], // dropped
      [Buffer.concat([header, chunk(0), chunk(1), chunk(2), tail, chunk(3)]), 3], // final moved up
    ];
    for (const [v, at] of variants) {
      const { out, error } = await decrypt(v);
      expect(codeOf(error)).toBe('export_tampered');
      expect((error as Error).message).toBe(`authentication failed at chunk ${at}: the file was modified or corrupted`);
      expect(out.equals(plain.subarray(0, at * CHUNK))).toBe(true);
    }
  });

  it('rejects a header spliced from another file encrypted with the same key', async () => {
    const a = await encrypt(randomBytes(3 * CHUNK));
    const b = await encrypt(randomBytes(3 * CHUNK));
    const spliced = Buffer.concat([a.subarray(0, ENCRYPTION_HEADER_BYTES), b.subarray(ENCRYPTION_HEADER_BYTES)]);
    const { out, error } = await decrypt(spliced);
    expect(codeOf(error)).toBe('export_tampered');
    expect(out.length).toBe(0);
  });
});

describe('loadEncryptionKey', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pitr-key-'));
  const bytes = randomBytes(32);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads hex and base64 from the environment', () => {
    expect(loadEncryptionKey({ env: bytes.toString('hex') }).equals(bytes)).toBe(true);
    expect(loadEncryptionKey({ env: bytes.toString('hex').toUpperCase() }).equals(bytes)).toBe(true);
    expect(loadEncryptionKey({ env: bytes.toString('base64') }).equals(bytes)).toBe(true);
    expect(loadEncryptionKey({ env: bytes.toString('base64url') }).equals(bytes)).toBe(true);
    expect(loadEncryptionKey({ env: ` ${bytes.toString('hex')}\n` }).equals(bytes)).toBe(true);
  });

  it('reads a key file with a trailing newline, preferring it over the environment', () => {
    const file = join(dir, 'key');
    writeFileSync(file, `${bytes.toString('base64')}\n`);
    expect(loadEncryptionKey({ file }).equals(bytes)).toBe(true);
    expect(loadEncryptionKey({ file, env: generateEncryptionKey() }).equals(bytes)).toBe(true);
  });

  it('rejects bad lengths and encodings with a one-line usage error that never shows the key', () => {
    const bad = [
      'ab'.repeat(31),
      'ab'.repeat(33),
      'zz'.repeat(32),
      randomBytes(31).toString('base64'),
      randomBytes(33).toString('base64'),
      `${bytes.toString('base64')}===`,
      'not a key at all',
    ];
    for (const env of bad) {
      let error: unknown;
      try {
        loadEncryptionKey({ env });
      } catch (err) {
        error = err;
      }
      expect(codeOf(error)).toBe('bad_encryption_key');
      expect((error as PitrError).exitClass).toBe('usage');
      expect((error as Error).message).not.toContain(env.trim());
      expect((error as Error).message).not.toContain('\n');
    }
    const file = join(dir, 'short');
    writeFileSync(file, 'abcd\n');
    expect(() => loadEncryptionKey({ file })).toThrow(/key file/);
    expect(() => loadEncryptionKey({ file: join(dir, 'missing') })).toThrow(/cannot read key file .*ENOENT/);
  });

  it('asks for PITR_ENCRYPTION_KEY or --key-file when neither is given', () => {
    for (const source of [{}, { env: '' }, { env: undefined, file: undefined }]) {
      expect(() => loadEncryptionKey(source)).toThrow(/PITR_ENCRYPTION_KEY.*--key-file/);
    }
  });

  it('registers every form of the key with the redactor', () => {
    const key = randomBytes(32);
    loadEncryptionKey({ env: `${key.toString('hex')}\n` });
    const line = `k=${key.toString('hex')} K=${key.toString('hex').toUpperCase()} b=${key.toString('base64')} u=${key.toString('base64url')}`;
    expect(redactSecrets(line)).toBe('k=******** K=******** b=******** u=********');
  });

  it('generates 64 hex characters that load back', () => {
    const hex = generateEncryptionKey();
    expect(hex).toMatch(/^[0-9a-f]{64}$/);
    expect(loadEncryptionKey({ env: hex }).toString('hex')).toBe(hex);
  });
});
