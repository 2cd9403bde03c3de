import { describe, expect, it } from 'vitest';
import { mulberry32 as random } from '../support/random.js';
import { DifferenceRows, KeyList, keyHashRows, mergeKeyHashes, orderedKeyTypes, type Difference } from '../../src/diff/key-hash-merge.js';

type Value = bigint | string;
const WIDTH: Record<string, number> = { smallint: 2, integer: 4, bigint: 8, uuid: 16 };

function field(type: string, v: Value): Buffer {
  const b = Buffer.alloc(WIDTH[type]!);
  if (type === 'uuid') Buffer.from((v as string).replace(/-/g, ''), 'hex').copy(b);
  else if (type === 'bigint') b.writeBigInt64BE(v as bigint);
  else if (type === 'integer') b.writeInt32BE(Number(v));
  else b.writeInt16BE(Number(v));
  return b;
}

/** What the server sends for `copy (select key…, hash …) to stdout (format binary)`. */
function binaryCopy(types: string[], rows: { key: Value[]; hash: bigint }[]): Buffer {
  const parts: Buffer[] = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)];
  for (const r of rows) {
    const count = Buffer.alloc(2);
    count.writeInt16BE(types.length + 1);
    parts.push(count);
    for (const [i, t] of types.entries()) {
      const len = Buffer.alloc(4);
      len.writeInt32BE(WIDTH[t]!);
      parts.push(len, field(t, r.key[i]!));
    }
    const h = Buffer.alloc(12);
    h.writeInt32BE(8);
    h.writeBigInt64BE(r.hash, 4);
    parts.push(h);
  }
  parts.push(Buffer.from([0xff, 0xff]));
  return Buffer.concat(parts);
}

async function* chunked(buf: Buffer, rand: () => number): AsyncGenerator<Buffer> {
  for (let at = 0; at < buf.length; ) {
    const n = 1 + Math.floor(rand() * (rand() < 0.2 ? 7 : 300));
    yield buf.subarray(at, at + n);
    at += n;
  }
}

const compare = (a: Value[], b: Value[]) => {
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue;
    return a[i]! < b[i]! ? -1 : 1;
  }
  return 0;
};

function randomKey(types: string[], rand: () => number): Value[] {
  return types.map((t) => {
    if (t === 'uuid') {
      const hex = Array.from({ length: 32 }, () => Math.floor(rand() * 16).toString(16)).join('');
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    }
    const span = t === 'smallint' ? 60 : t === 'integer' ? 2 ** 31 : 2 ** 62;
    // Small magnitudes too, and both signs: the sign bit is where byte order and value order part.
    const magnitude = rand() < 0.5 ? Math.floor(rand() * 50) : Math.floor(rand() * span);
    return BigInt(rand() < 0.5 ? -magnitude : magnitude);
  });
}

/** Reads DifferenceRows' COPY text back: key values, kind and hash per row. */
function readDifferences(types: string[], buf: Buffer): { key: Value[]; kind: string; hash: bigint | null }[] {
  expect(buf.subarray(0, 11).toString('latin1')).toBe('PGCOPY\n\xff\r\n\0');
  const out = [];
  let at = 19;
  for (;;) {
    const fields = buf.readInt16BE(at);
    at += 2;
    if (fields === -1) break;
    expect(fields).toBe(types.length + 2);
    const key: Value[] = [];
    for (const t of types) {
      expect(buf.readInt32BE(at)).toBe(WIDTH[t]);
      const v = buf.subarray(at + 4, at + 4 + WIDTH[t]!);
      const hex = v.toString('hex');
      key.push(
        t === 'uuid' ? `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}` : t === 'bigint' ? v.readBigInt64BE() : t === 'integer' ? BigInt(v.readInt32BE()) : BigInt(v.readInt16BE()),
      );
      at += 4 + WIDTH[t]!;
    }
    const kindLength = buf.readInt32BE(at);
    const kind = buf.toString('latin1', at + 4, at + 4 + kindLength);
    at += 4 + kindLength;
    const hashLength = buf.readInt32BE(at);
    const hash = hashLength === -1 ? null : buf.readBigInt64BE(at + 4);
    at += 4 + Math.max(0, hashLength);
    out.push({ key, kind, hash });
  }
  expect(at).toBe(buf.length);
  return out;
}

describe('merging key-ordered (key, hash) streams', () => {
  const keySets = [['bigint'], ['integer'], ['smallint'], ['uuid'], ['integer', 'uuid'], ['smallint', 'bigint']];

  it.each(keySets)('finds exactly the missing, changed and extra keys, on any chunking (%s …)', async (...types) => {
    for (let seed = 1; seed <= 40; seed++) {
      const rand = random(seed * 7919 + types.length);
      const keys = new Map<string, Value[]>();
      for (let i = 0; i < 1 + Math.floor(rand() * 400); i++) {
        const k = randomKey(types, rand);
        keys.set(JSON.stringify(k, (_, v) => (typeof v === 'bigint' ? v.toString() : v)), k);
      }
      const all = [...keys.values()].sort(compare);
      const branch: { key: Value[]; hash: bigint }[] = [];
      const production: { key: Value[]; hash: bigint }[] = [];
      const expected: { key: Value[]; kind: Difference; hash: bigint | null }[] = [];
      for (const key of all) {
        const hash = BigInt.asIntN(64, BigInt(Math.floor(rand() * 2 ** 53)) * 4099n);
        const roll = rand();
        if (roll < 0.15) {
          branch.push({ key, hash });
          expected.push({ key, kind: 'missing', hash });
        } else if (roll < 0.3) {
          production.push({ key, hash });
          expected.push({ key, kind: 'extra', hash: null });
        } else if (roll < 0.45) {
          // Only the last bit differs: every byte of the hash is compared.
          branch.push({ key, hash });
          production.push({ key, hash: hash ^ 1n });
          expected.push({ key, kind: 'changed', hash });
        } else {
          branch.push({ key, hash });
          production.push({ key, hash });
        }
      }
      const rows = new DifferenceRows(types, 64);
      const kept = new KeyList(types, 1 << 20);
      const taken: Buffer[] = [];
      const seen: { key: Value[]; kind: Difference }[] = [];
      const counts = await mergeKeyHashes(
        keyHashRows(chunked(binaryCopy(types, branch), rand), types, 'branch'),
        keyHashRows(chunked(binaryCopy(types, production), rand), types, 'production'),
        (kind, batch, row) => {
          rows.add(kind, batch, row);
          if (kind !== 'extra') expect(kept.add(batch, row)).toBe(true);
          if (rows.bytes >= 64) taken.push(rows.take());
          seen.push({ key: [], kind });
        },
      );
      taken.push(rows.take(true));
      expect(counts, `seed ${seed}`).toEqual({ branchRows: branch.length, productionRows: production.length });
      expect(readDifferences(types, Buffer.concat(taken)), `seed ${seed}`).toEqual(expected);
      // The kept keys read back as the text the branch is asked for, batch by batch, in order.
      const texts = [...kept.textBatches(7)];
      expect(texts.every((b, i) => b.length === 7 || i === texts.length - 1)).toBe(true);
      expect(texts.flat(), `seed ${seed}`).toEqual(expected.filter((d) => d.kind !== 'extra').map((d) => d.key.map(String)));
    }
  });

  it('refuses a stream whose keys do not increase, and one cut before its trailer', async () => {
    const types = ['bigint'];
    const rand = random(3);
    const unordered = binaryCopy(types, [{ key: [5n], hash: 1n }, { key: [-3n], hash: 1n }]);
    const ordered = binaryCopy(types, [{ key: [-3n], hash: 1n }]);
    await expect(mergeKeyHashes(keyHashRows(chunked(unordered, rand), types, 'branch'), keyHashRows(chunked(ordered, rand), types, 'production'), () => undefined)).rejects.toThrow(
      "the branch's keys did not arrive in strictly increasing order",
    );
    const repeated = binaryCopy(types, [{ key: [7n], hash: 1n }, { key: [7n], hash: 2n }]);
    await expect(mergeKeyHashes(keyHashRows(chunked(ordered, rand), types, 'branch'), keyHashRows(chunked(repeated, rand), types, 'production'), () => undefined)).rejects.toThrow(
      "the production's keys did not arrive",
    );
    const cut = ordered.subarray(0, ordered.length - 2);
    await expect(mergeKeyHashes(keyHashRows(chunked(cut, rand), types, 'branch'), keyHashRows(chunked(ordered, rand), types, 'production'), () => undefined)).rejects.toThrow('without its trailer');
  });

  it('keeps keys only up to its byte limit', async () => {
    const types = ['bigint'];
    const rows = Array.from({ length: 10 }, (_, i) => ({ key: [BigInt(i)], hash: 1n }));
    const kept = new KeyList(types, 8 * 4);
    const added: boolean[] = [];
    await mergeKeyHashes(keyHashRows(chunked(binaryCopy(types, rows), random(5)), types, 'branch'), keyHashRows(chunked(binaryCopy(types, []), random(6)), types, 'production'), (_, batch, row) => {
      added.push(kept.add(batch, row));
    });
    expect(added).toEqual([true, true, true, true, false, false, false, false, false, false]);
    expect([...kept.textBatches(3)]).toEqual([[['0'], ['1'], ['2']], [['3']]]);
  });

  it('merges only keys whose binary form orders like the value', () => {
    expect(orderedKeyTypes(['bigint'])).toBe(true);
    expect(orderedKeyTypes(['integer', 'uuid', 'smallint'])).toBe(true);
    expect(orderedKeyTypes(['text'])).toBe(false);
    expect(orderedKeyTypes(['numeric'])).toBe(false);
    expect(orderedKeyTypes(['integer', 'timestamp with time zone'])).toBe(false);
    expect(orderedKeyTypes([])).toBe(false);
  });
});
