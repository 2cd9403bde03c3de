import { connect } from '../db/connect.js';
import { diffKeys } from '../diff/rows.js';
import type { RecoverySessions } from './session.js';
import type { TableSelection } from './selection.js';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { copyOut } from '../db/copy-out.js';
import { DifferenceRows, KeyList, keyHashRows, mergeKeyHashes, orderedKeyTypes } from '../diff/key-hash-merge.js';
import { copyBetween, useCopy } from './copy.js';
import { bothHaveRecordHash } from '../db/row-hash.js';
import { fastRowHash, rowHash } from './hash.js';
import { cols, keyMatch } from './sql.js';
import { arrayLiteral } from '../db/sql.js';
import { KEY_BATCH, stageRowsByKeys } from './staging.js';
import type { RecoverRequest } from './types.js';

/**
 * Which rows of a table a recovery must look at, from the diff engine: both servers hash their
 * rows and only the keys that differ come back (missing in production, changed, or only in
 * production). Only those keys' branch rows are then copied and staged, so repairing a 0.1%
 * corruption moves 0.1% of the table, not all of it. Two ways, chosen from a sampled share of
 * changed rows: few changes, the segment diff engine (production read in the separate READ ONLY
 * session, with the user's --where; the write transaction gets keys); many changes, every row's
 * key and hash from the branch joined with production's in one pass (--where, again, only ever
 * evaluated in the READ ONLY session). When the key is integers or uuids, the many-changes way
 * merges both sides' key-ordered (key, hash) streams here instead of joining them in production.
 * PITR_RECOVER_DIFF=dense|sparse|join forces one (tests; join is the many-changes way in production).
 */
export async function stageDifferences(p: RecoverySessions, req: RecoverRequest, s: TableSelection, n: number): Promise<{ candidates: number; scope?: string }> {
  const reader = p.productionRead;
  if (!reader) throw new Error('planning from differences needs the read-only production session');
  const t = s.production.qualified;
  await p.production.query(`create temp table pitr_diff_${n} on commit drop as select ${cols(s.key)}, ''::text as kind, 0::int8 as h from ${t} where false`);
  const wanted = new Set<string>([...(req.mode === 'missing' ? [] : ['changed']), ...(req.mode === 'changed' ? [] : ['missing']), ...(req.deleteExtra ? ['extra'] : [])]);
  const names = s.columns.map((c) => c.name);
  const hash = (await bothHaveRecordHash(p.branch, p.production)) ? (alias: string) => fastRowHash(s.columns, alias) : (alias: string) => rowHash(names, alias);
  const dense = (await changedShare(p, s, req.where, hash)) > DENSE_SHARE;
  let found: KeyList | null = null;
  if (dense && useCopy() && orderedKeyTypes(keyTypes(s))) found = await mergeDifferences(p, req, s, n, wanted, hash);
  else if (dense) await findDenseDifferences(p, req, s, n, wanted, hash);
  else await findSparseDifferences(p, req, s, n, wanted, reader);
  await p.production.query(`analyze pitr_diff_${n}`);
  // The dense diff brought the branch's hash of every differing row: what staging is checked against.
  const expected = dense ? { sql: `select count(*)::text as n, coalesce(sum(h), 0)::text as h from pitr_diff_${n} where kind <> 'extra'`, hash: hash('x') } : undefined;
  // The merge's keys are at hand (unless there were too many to hold): no need to read them back from production.
  // Bigger batches than a cursor's: each batch costs the branch one pass over the table to join its keys.
  const keys = found ? found.textBatches(KEY_BATCH * 4) : `select ${cols(s.key)} from pitr_diff_${n} where kind <> 'extra'`;
  const candidates = await stageRowsByKeys(p, s, n, keys, req.where, expected);
  if (!req.deleteExtra) return { candidates };
  await p.production.query(`create temp table pitr_scope_${n} on commit drop as select ${cols(s.key)} from pitr_diff_${n} where kind = 'extra'`);
  await p.production.query(`create index on pitr_scope_${n} (${cols(s.key)}); analyze pitr_scope_${n}`);
  return { candidates, scope: `pitr_scope_${n}` };
}

/** Few rows differ: the diff engine's segment checksums find them without hashing most rows twice. */
async function findSparseDifferences(p: RecoverySessions, req: RecoverRequest, s: TableSelection, n: number, wanted: Set<string>, reader: RecoverySessions['production']): Promise<void> {
  const types = s.key.map((k) => s.columns.find((c) => c.name === k)!.type);
  for (const c of [p.branch, reader]) await c.query(`set local work_mem = '32MB'; set local jit = off`);
  await diffKeys(
    {
      branch: p.branch,
      production: reader,
      branchTable: s.branch,
      productionTable: s.production,
      ...(req.where !== undefined && { where: req.where }),
      columns: s.columns.map((c) => c.name),
      connect: { branch: () => connect(req.branchUrl), production: () => connect(req.productionUrl) },
    },
    async (keys) => {
      const chosen = keys.filter((k) => wanted.has(k.kind) && k.key);
      if (!chosen.length) return;
      const arrays = s.key.map((_, i) => arrayLiteral(chosen.map((k) => k.key![i]!), types[i]!));
      await p.production.query(`insert into pitr_diff_${n} select *, null from unnest(${arrays.join(', ')}, ${arrayLiteral(chosen.map((k) => k.kind), 'text')})`);
    },
  );
}

/** Above this share of changed rows (from a sample), hashing every row in one pass beats the segment diff. */
const DENSE_SHARE = 0.005;
const PROBE_PAGES = 32;

/**
 * The share of the branch's rows that differ in production, from a block sample of the branch's
 * keys looked up in production. Only a choice of method rides on it, never a result.
 */
async function changedShare(p: RecoverySessions, s: TableSelection, where: string | undefined, hash: (alias: string) => string): Promise<number> {
  const forced = process.env.PITR_RECOVER_DIFF;
  if (forced === 'dense' || forced === 'join') return 1;
  if (forced === 'sparse') return 0;
  await p.branch.query('savepoint pitr_probe');
  let sample;
  try {
    const size = await p.branch.query(`select greatest(pg_relation_size($1::regclass), (select sum(pg_relation_size(relid)) from pg_partition_tree($1::regclass))) / current_setting('block_size')::int8 as pages`, [s.branch.qualified]);
    const percent = Math.min(100, (PROBE_PAGES * 100) / Math.max(1, Number(size.rows[0].pages)));
    const { rows } = await p.branch.query({
      rowMode: 'array',
      text: `select ${s.key.map((k) => `${cols([k], 'x')}::text`).join(', ')}, ${hash('x')}::text as h
               from ${s.branch.qualified} x tablesample system (${percent}) repeatable (7)
              where ${where === undefined ? 'true' : `(${where})`}`,
    });
    sample = rows as string[][];
    await p.branch.query('release savepoint pitr_probe');
  } catch {
    // A partitioned table (or anything TABLESAMPLE refuses): the segment diff, which needs no sample.
    await p.branch.query('rollback to savepoint pitr_probe; release savepoint pitr_probe');
    return 0;
  }
  if (sample.length === 0) return 0;
  const types = s.key.map((k) => s.columns.find((c) => c.name === k)!.type);
  const keyNames = s.key.map((_, i) => `k${i}`);
  const arrays = s.key.map((_, i) => arrayLiteral(sample.map((r) => r[i]!), types[i]!));
  const { rows } = await p.production.query(
    // IS TRUE keeps the hash out of the join keys: only the sampled rows are hashed.
    `select count(*)::int as same from ${s.production.qualified} t join unnest(${arrays.join(', ')}, ${arrayLiteral(sample.map((r) => r[s.key.length]!), 'int8')}) as k(${keyNames.join(', ')}, h)
       on ${s.key.map((k, i) => `t.${cols([k])} = k.${keyNames[i]}`).join(' and ')} where (${hash('t')} = k.h) is true`,
  );
  return 1 - (rows[0].same as number) / sample.length;
}

/**
 * Many rows differ: every row's (key, hash) is streamed from the branch into production in one
 * COPY, and production joins them with its own rows' hashes. Bytes pass through untouched (no
 * per-row work here), and nothing is hashed twice. With --where, production's side is read in
 * the READ ONLY session and arrives the same way.
 */
async function findDenseDifferences(p: RecoverySessions, req: RecoverRequest, s: TableSelection, n: number, wanted: Set<string>, hash: (alias: string) => string): Promise<void> {
  const t = s.production.qualified;
  const keyAndHash = (alias: string) => `${cols(s.key, alias)}, ${hash(alias)} as h`;
  await p.production.query(`create temp table pitr_bh_${n} on commit drop as select ${keyAndHash('t')} from ${t} t where false`);
  let productionSide = `(select ${keyAndHash('t')} from ${t} t)`;
  // Binary when the key's types are built-in scalars (introspected under a pinned search_path, user types print qualified):
  // same types on both sides (the selection checks it), and no type OIDs inside the values as arrays and records carry.
  const binary = s.key.every((k) => /^[a-z0-9 (),]+$/.test(s.columns.find((c) => c.name === k)!.type));
  await copyBetween(p.branch, `select ${keyAndHash('x')} from (${s.sql}) x`, p.production, `pitr_bh_${n}`, `${cols(s.key)}, h`, binary);
  if (req.where !== undefined) {
    if (!p.productionRead) throw new Error('--where on production needs the read-only session');
    await p.production.query(`create temp table pitr_ph_${n} on commit drop as select * from pitr_bh_${n} where false`);
    await copyBetween(p.productionRead, `select ${keyAndHash('t')} from ${t} t where (${req.where})`, p.production, `pitr_ph_${n}`, `${cols(s.key)}, h`, binary);
    productionSide = `pitr_ph_${n}`;
  }
  // No ANALYZE: a hash full join is the plan either way, and the table's size is known from its pages.
  const kind = `case when p.h is null then 'missing' when b.h is null then 'extra' else 'changed' end`;
  await p.production.query(
    `insert into pitr_diff_${n}
     select ${s.key.map((k) => `coalesce(b.${cols([k])}, p.${cols([k])})`).join(', ')}, ${kind}, b.h from pitr_bh_${n} b full join ${productionSide} p on ${keyMatch(s.key, 'b', 'p')}
      where b.h is distinct from p.h and ${kind} = any(${arrayLiteral([...wanted], 'text')})`,
  );
}

const keyTypes = (s: TableSelection) => (process.env.PITR_RECOVER_DIFF === 'join' ? [] : s.key.map((k) => s.columns.find((c) => c.name === k)!.type));

/** The merge keeps the keys it found for staging up to this many bytes of them (8 per bigint key). */
const KEPT_KEY_BYTES = 64 * 1024 * 1024;

/** Flush the differences to production in pieces of about this many bytes. */
const DIFF_FLUSH = 256 * 1024;

/**
 * Many rows differ and the key orders as bytes: both servers stream every row's (key, hash) in
 * key order, at once, and the streams are merged here. Only the differing keys reach
 * production's write transaction (binary COPY into pitr_diff_<n>); nothing is staged or joined
 * on either server. Production is read in the READ ONLY session, with the user's --where.
 */
async function mergeDifferences(p: RecoverySessions, req: RecoverRequest, s: TableSelection, n: number, wanted: Set<string>, hash: (alias: string) => string): Promise<KeyList | null> {
  const reader = p.productionRead!;
  const types = keyTypes(s);
  const order = cols(s.key);
  // A sort of (key, hash) pairs after one sequential pass: an index scan in key order visits the heap out of order.
  const readers = [p.branch, reader];
  await Promise.all(readers.map((c) => c.query(`set local jit = off; set local enable_indexscan = off; set local enable_indexonlyscan = off; set local enable_bitmapscan = off; set local work_mem = '256MB'`)));
  const streamOf = (client: pg.Client, select: string) => copyOut(client, `copy (${select} order by ${order}) to stdout (format binary)`);
  const branchOut = streamOf(p.branch, `select ${cols(s.key, 'x')}, ${hash('x')} from (${s.sql}) x`);
  const productionOut = streamOf(reader, `select ${cols(s.key, 't')}, ${hash('t')} from ${s.production.qualified} t${req.where === undefined ? '' : ` where (${req.where})`}`);
  const rows = new DifferenceRows(types, DIFF_FLUSH);
  let keys: KeyList | null = new KeyList(types, KEPT_KEY_BYTES);
  const into = p.production.query(copyFrom(`copy pitr_diff_${n} (${cols(s.key)}, kind, h) from stdin (format binary)`));
  let failure: Error | null = null;
  into.on('error', (err: Error) => (failure ??= err));
  // Backpressure: the merge waits while production takes what it was sent.
  const send = (bytes: Buffer) => {
    if (failure) throw failure;
    return into.write(bytes) ? undefined : once(into, 'drain').then(() => undefined);
  };
  try {
    await mergeKeyHashes(keyHashRows(branchOut, types, 'branch'), keyHashRows(productionOut, types, 'production'), (kind, batch, row) => {
      if (!wanted.has(kind)) return;
      rows.add(kind, batch, row);
      if (kind !== 'extra' && keys && !keys.add(batch, row)) keys = null;
      return rows.bytes < DIFF_FLUSH ? undefined : send(rows.take());
    });
    into.end(rows.take(true));
    await finished(into);
    // Staging reads the branch by key next: its indexes are back.
    await Promise.all(readers.map((c) => c.query(`set local enable_indexscan = on; set local enable_indexonlyscan = on; set local enable_bitmapscan = on; set local work_mem = '32MB'`)));
    return keys;
  } catch (err) {
    for (const stream of [branchOut, productionOut, into]) stream.destroy();
    throw err;
  }
}
