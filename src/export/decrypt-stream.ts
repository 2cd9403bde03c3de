import { timingSafeEqual } from 'node:crypto';
import type { DecipherGCM } from 'node:crypto';
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';
import {
  checkMasterKey,
  ChunkCrypto,
  deriveDataKey,
  ENCRYPTION_FORMAT_VERSION,
  ENCRYPTION_HEADER_BYTES,
  ENCRYPTION_MAGIC,
  exportError,
  FINAL_BIT,
  headerDigest,
  keyCheck,
  MAX_CHUNK_BYTES,
  MAX_CHUNKS,
  OFF_CHECK,
  OFF_CHUNK,
  OFF_DIGEST,
  OFF_SALT,
  OFF_VERSION,
  SALT_BYTES,
  TAG_BYTES,
  WORD_BYTES,
} from './encryption-format.js';

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
