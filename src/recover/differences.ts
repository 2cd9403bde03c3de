import { connect } from '../db/connect.js';
import { diffKeys } from '../diff/rows.js';
import type { RecoverySessions } from './session.js';
import type { TableSelection } from './selection.js';
import { cols } from './sql.js';
import { arrayLiteral, stageRowsByKeys } from './staging.js';
import type { RecoverRequest } from './types.js';

/**
 * Which rows of a table a recovery must look at, from the diff engine: both servers hash their
 * rows and only the keys that differ come back (missing in production, changed, or only in
 * production). Only those keys' branch rows are then copied and staged, so repairing a 0.1%
 * corruption moves 0.1% of the table, not all of it. The diff reads production in the separate
 * READ ONLY session (with the user's --where); the write transaction gets keys.
 */
export async function stageDifferences(p: RecoverySessions, req: RecoverRequest, s: TableSelection, n: number): Promise<{ candidates: number; scope?: string }> {
  const reader = p.productionRead;
  if (!reader) throw new Error('planning from differences needs the read-only production session');
  const t = s.production.qualified;
  const types = s.key.map((k) => s.columns.find((c) => c.name === k)!.type);
  await p.production.query(`create temp table pitr_diff_${n} on commit drop as select ${cols(s.key)}, ''::text as kind from ${t} where false`);
  const wanted = new Set<string>([...(req.mode === 'missing' ? [] : ['changed']), ...(req.mode === 'changed' ? [] : ['missing']), ...(req.deleteExtra ? ['extra'] : [])]);
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
      await p.production.query(`insert into pitr_diff_${n} select * from unnest(${arrays.join(', ')}, ${arrayLiteral(chosen.map((k) => k.kind), 'text')})`);
    },
  );
  await p.production.query(`analyze pitr_diff_${n}`);
  const candidates = await stageRowsByKeys(p, s, n, `select ${cols(s.key)} from pitr_diff_${n} where kind <> 'extra'`, req.where);
  if (!req.deleteExtra) return { candidates };
  await p.production.query(`create temp table pitr_scope_${n} on commit drop as select ${cols(s.key)} from pitr_diff_${n} where kind = 'extra'`);
  await p.production.query(`create index on pitr_scope_${n} (${cols(s.key)}); analyze pitr_scope_${n}`);
  return { candidates, scope: `pitr_scope_${n}` };
}
