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
import { randomBytes } from 'node:crypto';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import { PitrError } from '../errors.js';
import {
  checkMasterKey,
  ChunkCrypto,
  DEFAULT_CHUNK_BYTES,
  deriveDataKey,
  exportError,
  ENCRYPTION_FORMAT_VERSION,
  ENCRYPTION_HEADER_BYTES,
  ENCRYPTION_MAGIC,
  FINAL_BIT,
  headerDigest,
  keyCheck,
  MAX_CHUNK_BYTES,
  MAX_CHUNKS,
  NONCE_PREFIX_BYTES,
  OFF_CHECK,
  OFF_CHUNK,
  OFF_DIGEST,
  OFF_NONCE,
  OFF_SALT,
  OFF_VERSION,
  SALT_BYTES,
  WORD_BYTES,
} from './encryption-format.js';

export { createDecryptStream } from './decrypt-stream.js';
export { DEFAULT_CHUNK_BYTES, ENCRYPTION_FORMAT_VERSION, ENCRYPTION_HEADER_BYTES, ENCRYPTION_KEY_ENV, ENCRYPTION_MAGIC, looksEncrypted, MAX_CHUNK_BYTES } from './encryption-format.js';
export { generateEncryptionKey, loadEncryptionKey } from './encryption-keys.js';

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
