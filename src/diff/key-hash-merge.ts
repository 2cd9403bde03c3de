/**
 * The dense diff's core: two `(key…, 64-bit row hash)` streams in binary COPY format, each
 * sorted by key on its server, merged here in one pass. Nothing is joined or staged on either
 * server; only keys and hashes cross the wire, and memory holds one chunk of each stream.
 *
 * Keys are compared as bytes. That is the servers' own order only for fixed-width keys whose
 * binary form sorts like the value once an integer's sign bit is flipped: smallint, integer,
 * bigint and uuid (`orderedKeyTypes`). Each stream must come strictly increasing in that order;
 * anything else (a collation, a type pitr does not know) is an error, never a silent miss.
 */

export type Difference = 'missing' | 'changed' | 'extra';

/** Byte widths of the key types whose binary form orders like the server's `order by`. */
const WIDTHS: Record<string, { width: number; signed: boolean }> = {
  smallint: { width: 2, signed: true },
  integer: { width: 4, signed: true },
  bigint: { width: 8, signed: true },
  uuid: { width: 16, signed: false },
};

/** Whether a key of these column types can be merged here (else the caller joins on a server). */
export const orderedKeyTypes = (types: string[]) => types.length > 0 && types.every((t) => t in WIDTHS);

/**
 * The rows of one parsed chunk: key i's comparable bytes (sign bits flipped, zero-padded to
 * whole 32-bit words) at `keys[i * 4 * words]`, its 8 hash bytes at `hashes[i * 8]`.
 */
export interface KeyHashBatch {
  count: number;
  words: number;
  keys: Buffer;
  hashes: Buffer;
}

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/** -1, 0 or 1 as key i of a orders before, equal to or after key j of b. */
function compareKeys(a: KeyHashBatch, i: number, b: KeyHashBatch, j: number): number {
  const words = a.words;
  for (let w = 0; w < words; w++) {
    const x = a.keys.readUInt32BE((i * words + w) * 4);
    const y = b.keys.readUInt32BE((j * words + w) * 4);
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

const sameHash = (a: KeyHashBatch, i: number, b: KeyHashBatch, j: number) =>
  a.hashes.readUInt32BE(i * 8) === b.hashes.readUInt32BE(j * 8) && a.hashes.readUInt32BE(i * 8 + 4) === b.hashes.readUInt32BE(j * 8 + 4);

/**
 * Parses a binary COPY stream of `(key columns…, hash)` rows, a chunk's rows at a time, and
 * checks that keys arrive strictly increasing. Chunks may split rows anywhere; a split row is
 * carried into the next chunk. `side` names the stream in errors.
 */
export async function* keyHashRows(chunks: AsyncIterable<Buffer>, keyTypes: string[], side: string): AsyncGenerator<KeyHashBatch> {
  const widths = keyTypes.map((t) => WIDTHS[t]!);
  const fields = widths.length + 1;
  const words = Math.ceil(widths.reduce((a, w) => a + w.width, 0) / 4);
  const previous = new Uint32Array(words);
  let first = true;
  let pending: Buffer = Buffer.alloc(0);
  let headerDone = false;
  let ended = false;
  for await (const chunk of chunks) {
    const buf = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let at = 0;
    if (!headerDone) {
      if (buf.length < 19) {
        pending = buf;
        continue;
      }
      if (!buf.subarray(0, 11).equals(SIGNATURE)) throw new Error('not a binary COPY stream');
      at = 19 + buf.readInt32BE(15);
      headerDone = true;
    }
    // A row takes at least 2 + 4 + 1 + 4 + 8 bytes: enough room for every row this chunk can hold.
    const room = Math.ceil(buf.length / 19) + 1;
    const batch: KeyHashBatch = { count: 0, words, keys: Buffer.alloc(room * words * 4), hashes: Buffer.allocUnsafe(room * 8) };
    while (at + 2 <= buf.length) {
      const count = buf.readInt16BE(at);
      if (count === -1) {
        ended = true;
        at += 2;
        break;
      }
      if (count !== fields) throw new Error(`binary COPY row has ${count} fields, expected ${fields}`);
      let p = at + 2;
      let complete = true;
      let k = batch.count * words * 4;
      for (const w of widths) {
        if (p + 4 + w.width > buf.length) {
          complete = false;
          break;
        }
        if (buf.readInt32BE(p) !== w.width) throw new Error(`binary COPY key field of ${buf.readInt32BE(p)} bytes, expected ${w.width}`);
        for (let b = 0; b < w.width; b++) batch.keys[k + b] = buf[p + 4 + b]!;
        if (w.signed) batch.keys[k]! ^= 0x80;
        k += w.width;
        p += 4 + w.width;
      }
      if (!complete || p + 12 > buf.length) break;
      if (buf.readInt32BE(p) !== 8) throw new Error(`binary COPY hash of ${buf.readInt32BE(p)} bytes, expected 8`);
      for (let b = 0; b < 8; b++) batch.hashes[batch.count * 8 + b] = buf[p + 4 + b]!;
      // Strictly increasing, word by word against the previous key (kept as words across chunks).
      let order = first ? 1 : 0;
      for (let w = 0; w < words; w++) {
        const word = batch.keys.readUInt32BE((batch.count * words + w) * 4);
        if (order === 0 && word !== previous[w]) order = word > previous[w]! ? 1 : -1;
        previous[w] = word;
      }
      if (order <= 0) throw new Error(`the ${side}'s keys did not arrive in strictly increasing order`);
      first = false;
      batch.count++;
      at = p + 12;
    }
    pending = buf.subarray(at);
    if (batch.count) yield batch;
    if (ended) break;
  }
  if (!ended) throw new Error('binary COPY stream ended without its trailer');
}

/**
 * Merges the branch's and production's key-ordered streams; calls `onDifference` for each key
 * missing in production, changed, or only in production (`extra`), in key order, with the batch
 * and row the key (and for missing and changed, the branch's hash) is found at.
 */
export async function mergeKeyHashes(
  branch: AsyncIterable<KeyHashBatch>,
  production: AsyncIterable<KeyHashBatch>,
  onDifference: (kind: Difference, batch: KeyHashBatch, row: number) => void | Promise<void>,
): Promise<{ branchRows: number; productionRows: number }> {
  const bs = branch[Symbol.asyncIterator]();
  const ps = production[Symbol.asyncIterator]();
  const pull = async (it: AsyncIterator<KeyHashBatch>) => {
    const next = await it.next();
    return next.done ? null : next.value;
  };
  let [b, p] = await Promise.all([pull(bs), pull(ps)]);
  let i = 0;
  let j = 0;
  let branchRows = 0;
  let productionRows = 0;
  for (;;) {
    if (b && i >= b.count) {
      branchRows += b.count;
      [b, i] = [await pull(bs), 0];
      continue;
    }
    if (p && j >= p.count) {
      productionRows += p.count;
      [p, j] = [await pull(ps), 0];
      continue;
    }
    if (!b && !p) break;
    const order = !p ? -1 : !b ? 1 : compareKeys(b, i, p, j);
    let waiting: void | Promise<void> = undefined;
    if (order < 0) waiting = onDifference('missing', b!, i++);
    else if (order > 0) waiting = onDifference('extra', p!, j++);
    else {
      if (!sameHash(b!, i, p!, j)) waiting = onDifference('changed', b!, i);
      i++;
      j++;
    }
    if (waiting) await waiting;
  }
  return { branchRows, productionRows };
}

/**
 * Binary COPY rows `(key…, kind text, hash int8)` for a table of differences, built from the
 * merge's comparable keys (the sign bits flipped back).
 */
export class DifferenceRows {
  private readonly widths: { width: number; signed: boolean }[];
  private buffer: Buffer;
  private size: number;
  constructor(keyTypes: string[], capacity: number) {
    this.widths = keyTypes.map((t) => WIDTHS[t]!);
    this.buffer = Buffer.allocUnsafe(capacity + 4096);
    this.size = SIGNATURE.copy(this.buffer, 0);
    this.buffer.fill(0, this.size, this.size + 8);
    this.size += 8;
  }

  /** Adds row `row` of `batch` as a difference of this kind; extra rows carry no hash. */
  add(kind: Difference, batch: KeyHashBatch, row: number): void {
    const out = this.buffer;
    let at = out.writeInt16BE(this.widths.length + 2, this.size);
    let k = row * batch.words * 4;
    for (const w of this.widths) {
      at = out.writeInt32BE(w.width, at);
      for (let b = 0; b < w.width; b++) out[at + b] = batch.keys[k + b]!;
      if (w.signed) out[at]! ^= 0x80;
      at += w.width;
      k += w.width;
    }
    at = out.writeInt32BE(kind.length, at);
    at += out.write(kind, at, 'latin1');
    if (kind === 'extra') at = out.writeInt32BE(-1, at);
    else {
      at = out.writeInt32BE(8, at);
      for (let b = 0; b < 8; b++) out[at + b] = batch.hashes[row * 8 + b]!;
      at += 8;
    }
    this.size = at;
  }

  /** Bytes gathered since the last take. */
  get bytes(): number {
    return this.size;
  }

  /** The gathered bytes (the COPY header first, the trailer after the last). */
  take(last = false): Buffer {
    if (last) this.size = this.buffer.writeInt16BE(-1, this.size);
    const out = Buffer.from(this.buffer.subarray(0, this.size));
    this.size = 0;
    return out;
  }
}

/**
 * Keys a merge found, kept as their bytes (8 per bigint key) rather than as JS values, and read
 * back as text in batches: what the branch is asked for next. `add` refuses once `limit` bytes
 * are held; the caller then reads the keys back from where it stored the differences.
 */
export class KeyList {
  private readonly widths: { width: number; signed: boolean; type: string }[];
  private readonly width: number;
  private chunks: Buffer[] = [];
  private used = 0;
  count = 0;

  constructor(
    keyTypes: string[],
    private readonly limit: number,
  ) {
    this.widths = keyTypes.map((type) => ({ ...WIDTHS[type]!, type }));
    this.width = this.widths.reduce((a, w) => a + w.width, 0);
  }

  add(batch: KeyHashBatch, row: number): boolean {
    if ((this.count + 1) * this.width > this.limit) return false;
    let chunk = this.chunks[this.chunks.length - 1];
    if (!chunk || this.used + this.width > chunk.length) {
      chunk = Buffer.allocUnsafe(Math.max(this.width, 64 * 1024 - ((64 * 1024) % this.width)));
      this.chunks.push(chunk);
      this.used = 0;
    }
    const from = row * batch.words * 4;
    for (let b = 0; b < this.width; b++) chunk[this.used + b] = batch.keys[from + b]!;
    this.used += this.width;
    this.count++;
    return true;
  }

  /** The keys in the order added, `size` at a time, each as its columns' text. */
  *textBatches(size: number): Generator<string[][]> {
    let out: string[][] = [];
    let left = this.count;
    for (const chunk of this.chunks) {
      for (let at = 0; at + this.width <= chunk.length && left > 0; at += this.width, left--) {
        const key: string[] = [];
        let k = at;
        for (const w of this.widths) {
          key.push(keyText(chunk, k, w));
          k += w.width;
        }
        out.push(key);
        if (out.length === size) {
          yield out;
          out = [];
        }
      }
    }
    if (out.length) yield out;
  }
}

/** A key column's value as text, from its comparable bytes. */
function keyText(bytes: Buffer, at: number, w: { width: number; signed: boolean; type: string }): string {
  if (w.type === 'uuid') {
    const hex = bytes.toString('hex', at, at + 16);
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
  // The sign bit was flipped for ordering: as unsigned big-endian, the value is offset by 2^(bits-1).
  if (w.width === 8) return (bytes.readBigUInt64BE(at) - 0x8000000000000000n).toString();
  if (w.width === 4) return (bytes.readUInt32BE(at) - 0x80000000).toString();
  return (bytes.readUInt16BE(at) - 0x8000).toString();
}
