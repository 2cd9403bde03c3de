/**
 * Streaming authenticated encryption for database exports (`pg_dump -Fc` output on its way to a
 * directory or S3). Memory stays flat: at most one chunk of plaintext is held on either side.
 *
 * File format, version 1 (all integers big-endian)
 * -------------------------------------------------
 * Header, 84 bytes:
 *   off  len  field
 *     0    7  magic "PITRENC"
 *     7    1  version = 1
 *     8    4  chunk size C in bytes (1 .. 64 MiB); every chunk but the last holds exactly C bytes
 *    12   32  salt, random per file
 *    44    8  nonce prefix, random per file
 *    52   16  key check = HMAC-SHA256(K, "pitr key check" || salt)[0..16]
 *    68   16  header digest = SHA-256(bytes 0..68)[0..16]  (unkeyed: tells corruption from a wrong key)
 *
 *   K, the data key, is derived per file: K = HKDF-SHA256(ikm = master key, salt, info = "pitr export v1", 32).
 *   A fresh salt per file gives a fresh key per file, so nonces can never repeat across files
 *   even when every export uses the same master key.
 *
 * Body: chunks i = 0, 1, 2, ... until (and including) the one marked final:
 *   4 bytes  word: bit 31 = final flag, bits 0..30 = plaintext length L
 *   L bytes  AES-256-GCM ciphertext
 *  16 bytes  GCM tag
 *   nonce(i) = nonce prefix (8) || i as u32 (4)           -- never reused within a file; i < 2^32
 *   AAD(i)   = header (84 bytes) || i as u32 || final flag as u8 (0 or 1)
 *   Non-final chunks have L = C exactly; the final chunk has L <= C and may be empty (it is empty
 *   when the plaintext length is a multiple of C, including zero). Nothing may follow it.
 *
 * What this catches: a header edit (digest, and every chunk's AAD binds the header), a wrong
 * master key (key check, reported before any decryption), bit flips in any chunk (tag), reordered
 * or duplicated chunks (index in nonce and AAD), truncation at a chunk boundary (no final chunk
 * seen), truncation mid-chunk, and appended bytes (anything after the final chunk).
 *
 * Decryption never emits a chunk's plaintext before that chunk's tag has been verified, so what
 * reaches the consumer before an error is always a prefix of the original at a chunk boundary.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { CipherGCM, DecipherGCM } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { PitrError, badInput } from '../errors.js';
import { registerSecret } from '../redact.js';

export const ENCRYPTION_MAGIC = Buffer.from('PITRENC', 'latin1');
export const ENCRYPTION_FORMAT_VERSION = 1;
export const ENCRYPTION_HEADER_BYTES = 84;
/** 1 MiB: measured as fast as 4 MiB (see the report in the module's test), with a quarter of the memory. */
export const DEFAULT_CHUNK_BYTES = 1 << 20;
export const MAX_CHUNK_BYTES = 64 << 20;
export const ENCRYPTION_KEY_ENV = 'PITR_ENCRYPTION_KEY';

const KEY_BYTES = 32;
const SALT_BYTES = 32;
const NONCE_PREFIX_BYTES = 8;
const TAG_BYTES = 16;
const WORD_BYTES = 4;
const FINAL_BIT = 0x8000_0000;
const MAX_CHUNKS = 0x1_0000_0000; // chunk index is a u32
const HKDF_INFO = Buffer.from('pitr export v1', 'latin1');
const KEY_CHECK_LABEL = Buffer.from('pitr key check', 'latin1');

// Header field offsets.
const OFF_VERSION = 7;
const OFF_CHUNK = 8;
const OFF_SALT = 12;
const OFF_NONCE = OFF_SALT + SALT_BYTES; // 44
const OFF_CHECK = OFF_NONCE + NONCE_PREFIX_BYTES; // 52
const OFF_DIGEST = OFF_CHECK + 16; // 68

// ---------------------------------------------------------------------------------------------
// Keys

/**
 * The master key from PITR_ENCRYPTION_KEY (`env`, the variable's value) or a key file (`file`, a
 * path). Either holds 64 hex characters or the base64 of 32 bytes; surrounding whitespace is
 * ignored. A key file wins over the environment, as flags do. Every form of the key is registered
 * with the redactor so no log line can show it.
 */
export function loadEncryptionKey(source: { env?: string | undefined; file?: string | undefined }): Buffer {
  let raw: string;
  let origin: string;
  if (source.file !== undefined && source.file !== '') {
    origin = `key file ${source.file}`;
    try {
      raw = readFileSync(source.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'read error';
      throw badInput('bad_encryption_key', `cannot read ${origin} (${code})`);
    }
  } else if (source.env !== undefined && source.env !== '') {
    origin = ENCRYPTION_KEY_ENV;
    raw = source.env;
  } else {
    throw badInput('bad_encryption_key', `no encryption key: set ${ENCRYPTION_KEY_ENV} or pass --key-file (generate one with: openssl rand -hex 32)`);
  }
  registerSecret(raw);
  const text = raw.trim();
  registerSecret(text);
  const key = parseKey(text);
  if (!key) {
    throw badInput('bad_encryption_key', `the encryption key in ${origin} is not 64 hex characters or the base64 of 32 bytes`);
  }
  registerKeyForms(key);
  return key;
}

/** A new random master key as 64 hex characters. */
export function generateEncryptionKey(): string {
  return randomBytes(KEY_BYTES).toString('hex');
}

function parseKey(text: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  // Standard or URL-safe base64, padding optional: 32 bytes are 43 significant characters.
  const unpadded = text.replace(/=+$/, '');
  if (text.length - unpadded.length <= 2 && /^[A-Za-z0-9+/_-]{43}$/.test(unpadded)) {
    const key = Buffer.from(unpadded, 'base64');
    if (key.length === KEY_BYTES) return key;
  }
  return undefined;
}

function registerKeyForms(key: Buffer): void {
  const hex = key.toString('hex');
  registerSecret(hex);
  registerSecret(hex.toUpperCase());
  const b64 = key.toString('base64');
  registerSecret(b64);
  registerSecret(b64.replace(/=+$/, ''));
  registerSecret(key.toString('base64url'));
}

function checkMasterKey(masterKey: Buffer): void {
  if (!Buffer.isBuffer(masterKey) || masterKey.length !== KEY_BYTES) {
    throw badInput('bad_encryption_key', `the encryption key must be ${KEY_BYTES} bytes`);
  }
}

function deriveDataKey(masterKey: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, salt, HKDF_INFO, KEY_BYTES));
}

function keyCheck(dataKey: Buffer, salt: Buffer): Buffer {
  return createHmac('sha256', dataKey).update(KEY_CHECK_LABEL).update(salt).digest().subarray(0, 16);
}

function headerDigest(header: Buffer): Buffer {
  return createHash('sha256').update(header.subarray(0, OFF_DIGEST)).digest().subarray(0, 16);
}

/** True when `head` (the first bytes of a file) starts like an encrypted export. */
export function looksEncrypted(head: Buffer): boolean {
  return head.length >= ENCRYPTION_MAGIC.length && head.subarray(0, ENCRYPTION_MAGIC.length).equals(ENCRYPTION_MAGIC);
}

/** Per-file chunk framing shared by both directions: nonce and AAD for chunk i. */
class ChunkCrypto {
  private readonly nonce: Buffer;
  private readonly aad: Buffer;

  constructor(
    private readonly dataKey: Buffer,
    header: Buffer,
  ) {
    this.nonce = Buffer.alloc(12);
    header.copy(this.nonce, 0, OFF_NONCE, OFF_NONCE + NONCE_PREFIX_BYTES);
    this.aad = Buffer.alloc(ENCRYPTION_HEADER_BYTES + 5);
    header.copy(this.aad, 0, 0, ENCRYPTION_HEADER_BYTES);
  }

  private prepare(index: number, final: boolean): void {
    this.nonce.writeUInt32BE(index, NONCE_PREFIX_BYTES);
    this.aad.writeUInt32BE(index, ENCRYPTION_HEADER_BYTES);
    this.aad[ENCRYPTION_HEADER_BYTES + 4] = final ? 1 : 0;
  }

  cipher(index: number, final: boolean): CipherGCM {
    this.prepare(index, final);
    const c = createCipheriv('aes-256-gcm', this.dataKey, this.nonce, { authTagLength: TAG_BYTES });
    c.setAAD(this.aad);
    return c;
  }

  decipher(index: number, final: boolean): DecipherGCM {
    this.prepare(index, final);
    const d = createDecipheriv('aes-256-gcm', this.dataKey, this.nonce, { authTagLength: TAG_BYTES });
    d.setAAD(this.aad);
    return d;
  }

  wipe(): void {
    this.dataKey.fill(0);
  }
}

function exportError(code: string, message: string): PitrError {
  return new PitrError(code, message, { exit: 'failure' });
}

// ---------------------------------------------------------------------------------------------
// Encryption

/** A Transform that turns plaintext into the format above. */
export function createEncryptStream(masterKey: Buffer, options: { chunkBytes?: number } = {}): Transform {
  checkMasterKey(masterKey);
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) {
    throw new PitrError('bad_chunk_size', `encryption chunk size must be an integer from 1 to ${MAX_CHUNK_BYTES} bytes`, { exit: 'usage' });
  }
  return new EncryptStream(masterKey, chunkBytes);
}

class EncryptStream extends Transform {
  private readonly header: Buffer;
  private readonly crypto: ChunkCrypto;
  private headerSent = false;
  private index = 0;
  /** Plaintext of the current partial chunk; allocated on first need and reused. */
  private buf: Buffer | undefined;
  private fill = 0;

  constructor(
    masterKey: Buffer,
    private readonly chunkBytes: number,
  ) {
    super();
    const header = Buffer.alloc(ENCRYPTION_HEADER_BYTES);
    ENCRYPTION_MAGIC.copy(header, 0);
    header[OFF_VERSION] = ENCRYPTION_FORMAT_VERSION;
    header.writeUInt32BE(chunkBytes, OFF_CHUNK);
    const salt = randomBytes(SALT_BYTES);
    salt.copy(header, OFF_SALT);
    randomBytes(NONCE_PREFIX_BYTES).copy(header, OFF_NONCE);
    const dataKey = deriveDataKey(masterKey, salt);
    keyCheck(dataKey, salt).copy(header, OFF_CHECK);
    headerDigest(header).copy(header, OFF_DIGEST);
    this.header = header;
    this.crypto = new ChunkCrypto(dataKey, header);
  }

  override _transform(data: Buffer | string, encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      const input = typeof data === 'string' ? Buffer.from(data, encoding) : data;
      this.sendHeader();
      const size = this.chunkBytes;
      let off = 0;
      while (off < input.length) {
        if (this.fill === 0 && input.length - off >= size) {
          // A whole chunk is available in the input: encrypt it in place, no copy.
          this.sealChunk(input.subarray(off, off + size), false);
          off += size;
          continue;
        }
        const buf = (this.buf ??= Buffer.allocUnsafe(size));
        const n = input.copy(buf, this.fill, off, Math.min(input.length, off + size - this.fill));
        this.fill += n;
        off += n;
        if (this.fill === size) {
          this.sealChunk(buf, false);
          this.fill = 0;
        }
      }
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.sendHeader();
      this.sealChunk(this.buf ? this.buf.subarray(0, this.fill) : Buffer.alloc(0), true);
      this.fill = 0;
      this.buf = undefined;
      this.crypto.wipe();
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _destroy(err: Error | null, callback: (error: Error | null) => void): void {
    this.crypto.wipe();
    callback(err);
  }

  private sendHeader(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    this.push(this.header);
  }

  private sealChunk(plain: Buffer, final: boolean): void {
    if (this.index >= MAX_CHUNKS) {
      throw exportError('export_too_large', `the export exceeds ${MAX_CHUNKS} encrypted chunks of ${this.chunkBytes} bytes; use a larger chunk size`);
    }
    const cipher = this.crypto.cipher(this.index, final);
    const word = Buffer.allocUnsafe(WORD_BYTES);
    word.writeUInt32BE((final ? FINAL_BIT : 0) + plain.length, 0);
    // update() copies into a fresh buffer, so `plain` may be reused right after.
    const body = cipher.update(plain);
    cipher.final();
    this.push(word);
    this.push(body);
    this.push(cipher.getAuthTag());
    this.index++;
  }
}

// ---------------------------------------------------------------------------------------------
// Decryption

/** A Transform that verifies and decrypts the format above; errors are PitrErrors (exit 1). */
export function createDecryptStream(masterKey: Buffer): Transform {
  checkMasterKey(masterKey);
  return new DecryptStream(Buffer.from(masterKey));
}

type Stage = 'header' | 'word' | 'body' | 'tag' | 'done';

class DecryptStream extends Transform {
  private stage: Stage = 'header';
  /** Small fixed-size fields (header, word, tag) are gathered here when split across writes. */
  private small = Buffer.alloc(ENCRYPTION_HEADER_BYTES);
  private smallFill = 0;
  private chunkBytes = 0;
  private crypto: ChunkCrypto | undefined;
  private index = 0;
  private final = false;
  private remaining = 0;
  private decipher: DecipherGCM | undefined;
  /** Decrypted but not yet authenticated plaintext of the current chunk; never pushed before the tag checks out. */
  private pending: Buffer[] = [];
  /** Bytes consumed so far, for messages. */
  private offset = 0;

  constructor(private readonly masterKey: Buffer) {
    super();
  }

  override _transform(data: Buffer | string, encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      const input = typeof data === 'string' ? Buffer.from(data, encoding) : data;
      let off = 0;
      while (off < input.length) {
        switch (this.stage) {
          case 'header':
            off = this.gather(input, off, ENCRYPTION_HEADER_BYTES);
            this.checkHeaderPrefix();
            if (this.smallFill === ENCRYPTION_HEADER_BYTES) this.openHeader();
            break;
          case 'word':
            off = this.gather(input, off, WORD_BYTES);
            if (this.smallFill === WORD_BYTES) this.openChunk();
            break;
          case 'body': {
            const n = Math.min(this.remaining, input.length - off);
            const out = this.decipher!.update(input.subarray(off, off + n));
            if (out.length > 0) this.pending.push(out);
            off += n;
            this.offset += n;
            this.remaining -= n;
            if (this.remaining === 0) this.stage = 'tag';
            break;
          }
          case 'tag':
            off = this.gather(input, off, TAG_BYTES);
            if (this.smallFill === TAG_BYTES) this.closeChunk();
            break;
          case 'done':
            throw exportError(
              'export_tampered',
              `unexpected data after the final chunk (at byte ${this.offset}): the file was modified or corrupted`,
            );
        }
      }
      callback();
    } catch (err) {
      this.discard();
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    if (this.stage === 'done') {
      callback();
      return;
    }
    let where: string;
    if (this.stage === 'header') {
      where = this.offset === 0 ? 'the file is empty' : `it ends inside the header (${this.offset} bytes)`;
    } else if (this.stage === 'word' && this.smallFill === 0) {
      where = `it ends after chunk ${this.index - 1} without the final chunk`;
    } else {
      where = `it ends in the middle of chunk ${this.index} (at byte ${this.offset})`;
    }
    this.discard();
    callback(exportError('export_truncated', `the encrypted export is truncated: ${where}; the file is incomplete`));
  }

  override _destroy(err: Error | null, callback: (error: Error | null) => void): void {
    this.discard();
    callback(err);
  }

  private discard(): void {
    this.pending = [];
    this.decipher = undefined;
    this.crypto?.wipe();
    this.masterKey.fill(0);
  }

  /** Copy up to `want - smallFill` bytes into `small`; returns the new input offset. */
  private gather(input: Buffer, off: number, want: number): number {
    const n = input.copy(this.small, this.smallFill, off, Math.min(input.length, off + want - this.smallFill));
    this.smallFill += n;
    this.offset += n;
    return off + n;
  }

  /** Reject a non-encrypted file or an unknown version as soon as the bytes show it. */
  private checkHeaderPrefix(): void {
    const have = Math.min(this.smallFill, ENCRYPTION_MAGIC.length);
    if (!this.small.subarray(0, have).equals(ENCRYPTION_MAGIC.subarray(0, have))) {
      throw exportError('export_not_encrypted', 'this file is not a pitr encrypted export (bad magic bytes)');
    }
    if (this.smallFill > OFF_VERSION && this.small[OFF_VERSION] !== ENCRYPTION_FORMAT_VERSION) {
      throw exportError(
        'export_bad_version',
        `unsupported encrypted export format version ${this.small[OFF_VERSION]} (this pitr reads version ${ENCRYPTION_FORMAT_VERSION}); upgrade pitr`,
      );
    }
  }

  private openHeader(): void {
    const header = Buffer.from(this.small); // keep a private copy: `small` is reused for words and tags
    if (!timingSafeEqual(headerDigest(header), header.subarray(OFF_DIGEST, OFF_DIGEST + 16))) {
      throw exportError('export_tampered', 'authentication failed at the header: the file was modified or corrupted');
    }
    const chunkBytes = header.readUInt32BE(OFF_CHUNK);
    if (chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) {
      throw exportError('export_tampered', `invalid chunk size ${chunkBytes} in the header: the file was modified or corrupted`);
    }
    const salt = header.subarray(OFF_SALT, OFF_SALT + SALT_BYTES);
    const dataKey = deriveDataKey(this.masterKey, salt);
    this.masterKey.fill(0);
    if (!timingSafeEqual(keyCheck(dataKey, salt), header.subarray(OFF_CHECK, OFF_CHECK + 16))) {
      dataKey.fill(0);
      throw exportError('export_wrong_key', 'wrong encryption key: this export was encrypted with a different key');
    }
    this.chunkBytes = chunkBytes;
    this.crypto = new ChunkCrypto(dataKey, header);
    this.smallFill = 0;
    this.stage = 'word';
  }

  private openChunk(): void {
    const word = this.small.readUInt32BE(0);
    this.smallFill = 0;
    const final = word >= FINAL_BIT;
    const length = final ? word - FINAL_BIT : word;
    // The length is not authenticated until the tag, so bound it before trusting it.
    if (final ? length > this.chunkBytes : length !== this.chunkBytes) {
      throw exportError('export_tampered', `authentication failed at chunk ${this.index}: the file was modified or corrupted`);
    }
    if (this.index >= MAX_CHUNKS) {
      throw exportError('export_tampered', `authentication failed at chunk ${this.index}: the file was modified or corrupted`);
    }
    this.final = final;
    this.remaining = length;
    this.decipher = this.crypto!.decipher(this.index, final);
    this.stage = length === 0 ? 'tag' : 'body';
  }

  private closeChunk(): void {
    const decipher = this.decipher!;
    this.decipher = undefined;
    this.smallFill = 0;
    try {
      decipher.setAuthTag(this.small.subarray(0, TAG_BYTES));
      decipher.final();
    } catch {
      throw exportError('export_tampered', `authentication failed at chunk ${this.index}: the file was modified or corrupted`);
    }
    const verified = this.pending;
    this.pending = [];
    for (const piece of verified) this.push(piece);
    this.index++;
    if (this.final) {
      this.stage = 'done';
      this.crypto!.wipe();
    } else {
      this.stage = 'word';
    }
  }
}
