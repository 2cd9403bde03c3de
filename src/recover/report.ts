import type { RecoveryPlan, RecoveryResult } from './engine.js';

const n = (x: number) => x.toLocaleString('en-US');

/** The plan as people read it before confirming (and in the run's Markdown report). */
export function renderPlan(plan: RecoveryPlan, source: string): string {
  const lines = [
    `Recovery plan ${plan.runId}: from ${source} into production, mode ${plan.mode}${plan.cascade ? ', with cascade' : ''}${plan.where ? `, where ${plan.where}` : ''}`,
    '',
    '| # | table | via | insert | update (columns) | delete |',
    '|---|---|---|---|---|---|',
    ...plan.tables.map(
      (t) =>
        `| ${t.n + 1} | ${t.table} | ${t.role === 'root' ? 'chosen' : `cascade (${t.via.join(', ')})`} | ${n(t.insert)} | ${n(t.update)}${
          Object.keys(t.updateColumns).length ? ` (${Object.entries(t.updateColumns).map(([c, k]) => `${c}: ${n(k)}`).join(', ')})` : ''
        } | ${n(t.delete)} |`,
    ),
    '',
    `Total: ${n(plan.totals.insert)} rows to insert, ${n(plan.totals.update)} to update, ${n(plan.totals.delete)} to delete; in one transaction, parents first.${
      plan.deferred.length ? ` Deferred constraints: ${plan.deferred.join(', ')}.` : ''
    }`,
    plan.deleteExtra ? 'Rows only in production that match the selection WILL BE DELETED (--delete-extra).' : 'Rows that exist only in production are kept.',
  ];
  return lines.join('\n');
}

export function renderResult(r: RecoveryResult, source: string): string {
  const lines = [
    `# pitr recovery ${r.runId}`,
    '',
    renderPlan(r.plan, source),
    '',
    '## Applied',
    '',
    '| table | inserted | updated | deleted | conflicts (left as they are) | verified |',
    '|---|---|---|---|---|---|',
    ...r.tables.map((t) => `| ${t.table} | ${n(t.inserted)} | ${n(t.updated)} | ${n(t.deleted)} | ${n(t.conflicts)} | ${t.verifiedMismatches === 0 ? 'yes' : `NO (${t.verifiedMismatches})`} |`),
    '',
    `Plan ${r.seconds.plan.toFixed(2)} s, apply ${r.seconds.apply.toFixed(2)} s. Verified: every recovered row equals the branch's version.`,
  ];
  const conflicts = r.tables.flatMap((t) => t.conflictSamples.map((c) => `- ${t.table} ${JSON.stringify(c.key)} (${c.action}): ${c.reason}`));
  if (conflicts.length) lines.push('', '## Conflicts', '', ...conflicts);
  lines.push('', `Undo: pitr undo ${r.runId}`);
  return lines.join('\n') + '\n';
}
