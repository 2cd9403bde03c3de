import { PitrError } from '../errors.js';
import { arrayLiteral, whereRejected } from '../db/sql.js';
import { copyBetween } from './copy.js';
import { bulkRowHash, rowHash, rowText } from './hash.js';
import type { RecoverySessions } from './session.js';
import type { TableSelection } from './selection.js';
import { cols } from './sql.js';

/**
 * Moving branch rows (or just their keys) into temp tables of production's write transaction,
 * and proving what arrived is what the branch holds. Temp tables are named by the table's
 * position in the plan: `pitr_src_<n>`, `pitr_keys_<n>`, `pitr_scope_<n>`.
 */

/** A failure while the user's --where runs on the branch is the user's, said in one line. */
const blameWhere = (err: unknown, where: string | undefined, s: TableSelection) => (where !== undefined && s.role === 'root' ? whereRejected(err) : err);

/**
 * Copies the selection's branch rows into `pitr_src_<n>`, then proves the copy exact: both
 * servers hash the rows at the same time and count and hash sum must match, so whatever COPY,
 * the network or type input did to the rows, nothing is written unless they are the branch's.
 */
export async function stageSource(p: RecoverySessions, s: TableSelection, n: number, where: string | undefined): Promise<number> {
  const names = s.columns.map((c) => c.name);
  await p.production.query(`create temp table pitr_src_${n} on commit drop as select ${cols(names)} from ${s.production.qualified} where false`);
  let copied: number;
  try {
    copied = await copyBetween(p.branch, s.sql, p.production, `pitr_src_${n}`, cols(names));
  } catch (err) {
    throw blameWhere(err, where, s);
  }
  // Statistics, not an index: the joins against it are hash joins.
  await p.production.query(`analyze pitr_src_${n}`);
  await checkCopied(p, s, `select * from pitr_src_${n}`, 'staging_mismatch', 'copied from the branch');
  return copied;
}

/**
 * Copies only the selection's keys into `pitr_keys_<n>`: enough to plan a recovery of deleted
 * rows, at a fraction of the bytes.
 */
export async function stageKeys(p: RecoverySessions, s: TableSelection, n: number, where: string | undefined): Promise<number> {
  await p.production.query(`create temp table pitr_keys_${n} on commit drop as select ${cols(s.key)} from ${s.production.qualified} where false`);
  try {
    return await copyBetween(p.branch, `select ${cols(s.key, 'x')} from (${s.sql}) x`, p.production, `pitr_keys_${n}`, cols(s.key));
  } catch (err) {
    throw blameWhere(err, where, s);
  }
}

/**
 * Production's rows in the user's selection, for --delete-extra on a table without a key: --where
 * runs in the separate READ ONLY session, and only its answer reaches the write transaction, each
 * distinct row's text and copies (`pitr_scope_<n>`). Keyed tables get theirs from the diff.
 */
export async function stageKeylessScope(p: RecoverySessions, s: TableSelection, n: number, where: string): Promise<void> {
  if (!p.productionRead) throw new Error('--where on production needs the read-only session');
  const names = s.columns.map((c) => c.name);
  const t = s.production.qualified;
  try {
    await p.production.query(`create temp table pitr_scope_${n} (r text, copies int8) on commit drop`);
    await copyBetween(p.productionRead, `select ${rowText(names, 't')}, count(*) from ${t} t where (${where}) group by 1`, p.production, `pitr_scope_${n}`, 'r, copies');
    await p.production.query(`analyze pitr_scope_${n}`);
  } catch (err) {
    throw whereRejected(err);
  }
}

/**
 * Proves that rows now in production (`rowsSql`) are exactly the selection's rows on the branch:
 * both servers hash their rows at the same time, and count and sum of per-row hashes must match.
 */
export async function checkCopied(p: RecoverySessions, s: TableSelection, rowsSql: string, code: string, what: string, branchSql = s.sql): Promise<void> {
  const names = s.columns.map((c) => c.name);
  const hash = await bulkRowHash(p.branch, p.production, { branch: s.branch.qualified, production: s.production.qualified }, names, s.sql);
  const sums = (client: RecoverySessions['branch'], from: string) => client.query(`select count(*)::text as n, coalesce(sum(${hash}), 0)::text as h from (${from}) x`);
  const [branchSum, productionSum] = await Promise.all([sums(p.branch, branchSql), sums(p.production, rowsSql)]);
  if (branchSum.rows[0].n !== productionSum.rows[0].n || branchSum.rows[0].h !== productionSum.rows[0].h) {
    throw new PitrError(
      code,
      `the rows of ${s.production.schema}.${s.production.name} ${what} differ from the branch's own (${productionSum.rows[0].n} vs ${branchSum.rows[0].n} rows): rolled back, nothing was changed`,
    );
  }
}

export const KEY_BATCH = 50_000;

/** Reads the keys `keysSql` returns in production's transaction, a batch at a time, each key as its columns' text. */
async function forEachKeyBatch(p: RecoverySessions, s: TableSelection, n: number, keysSql: string, onBatch: (keys: string[][]) => Promise<void>): Promise<void> {
  const cursor = `pitr_stage_keys_${n}`;
  await p.production.query(`declare ${cursor} no scroll cursor for select array[${s.key.map((k) => `${cols([k], 'x')}::text`).join(', ')}] as k from (${keysSql}) x`);
  try {
    for (;;) {
      const { rows } = await p.production.query(`fetch ${KEY_BATCH} from ${cursor}`);
      if (rows.length === 0) break;
      await onBatch(rows.map((r) => r.k as string[]));
    }
  } finally {
    await p.production.query(`close ${cursor}`).catch(() => undefined);
  }
}

/** The branch query for the selection's rows whose keys are in this batch. */
export function rowsForKeysSql(s: Pick<TableSelection, 'columns' | 'key' | 'sql'>, keys: string[][]): string {
  const types = s.key.map((k) => s.columns.find((c) => c.name === k)!.type);
  const arrays = s.key.map((_, i) => arrayLiteral(keys.map((row) => row[i]!), types[i]!));
  const names = s.key.map((_, i) => `k${i}`);
  return `select ${cols(s.columns.map((c) => c.name), 'x')} from (${s.sql}) x
            join unnest(${arrays.join(', ')}) as k(${names.join(', ')}) on ${s.key.map((k, i) => `x.${cols([k])} = k.${names[i]}`).join(' and ')}`;
}

/**
 * Stages only the branch rows of the given keys (`keys`: a query run in production for the
 * planned or the differing keys, or batches of key texts already at hand): they are read in batches, and each batch's rows are copied from the
 * branch by key into `pitr_src_<n>`. Count and hash sum of what arrived must equal the branch's
 * for the same keys, so nothing is written unless the staged rows are the branch's. When the
 * branch already hashed those rows in this snapshot, `expected.sql` (run in production) gives
 * their count and sum of `expected.hash` (over alias x), and the branch is not read twice.
 */
export async function stageRowsByKeys(
  p: RecoverySessions,
  s: TableSelection,
  n: number,
  keys: string | Iterable<string[][]>,
  where: string | undefined,
  expected?: { sql: string; hash: string },
): Promise<number> {
  const names = s.columns.map((c) => c.name);
  await p.production.query(`create temp table pitr_src_${n} on commit drop as select ${cols(names)} from ${s.production.qualified} where false`);
  let copied = 0;
  let branchCount = 0n;
  let branchHash = 0n;
  const stage = async (batch: string[][]) => {
    const sql = rowsForKeysSql(s, batch);
    try {
      copied += await copyBetween(p.branch, sql, p.production, `pitr_src_${n}`, cols(names));
      if (expected) return;
      // The same rows hashed on the branch, in the same snapshot: what the staging check compares with.
      const sums = await p.branch.query(`select count(*)::text as n, coalesce(sum(${rowHash(names, 'x')}), 0)::text as h from (${sql}) x`);
      branchCount += BigInt(sums.rows[0].n);
      branchHash += BigInt(sums.rows[0].h);
    } catch (err) {
      throw blameWhere(err, where, s);
    }
  };
  if (typeof keys === 'string') await forEachKeyBatch(p, s, n, keys, stage);
  else for (const batch of keys) await stage(batch);
  await p.production.query(`analyze pitr_src_${n}`);
  if (expected) {
    // The branch hashed these rows already, in the same snapshot (the dense diff): those sums are the reference.
    const { rows } = await p.production.query(expected.sql);
    branchCount = BigInt(rows[0].n);
    branchHash = BigInt(rows[0].h);
  }
  const { rows } = await p.production.query(`select count(*)::text as n, coalesce(sum(${expected?.hash ?? rowHash(names, 'x')}), 0)::text as h from pitr_src_${n} x`);
  // Sums of int8 hashes are numeric in Postgres: compare them as exact integers.
  if (BigInt(rows[0].n) !== branchCount || BigInt(rows[0].h) !== branchHash) {
    throw new PitrError(
      'staging_mismatch',
      `the rows of ${s.production.schema}.${s.production.name} copied from the branch differ from the branch's own (${rows[0].n} vs ${branchCount} rows): rolled back, nothing was changed`,
    );
  }
  return copied;
}
