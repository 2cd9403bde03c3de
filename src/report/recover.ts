import { SKIP_LOCK_NOTE } from '../recover/triggers.js';
import type { RecoveryPlan, RecoveryResult } from '../recover/types.js';
import { formatCount as n } from './format.js';

/** The plan as people read it before confirming (and in the run's Markdown report). */
export function renderPlan(plan: RecoveryPlan, source: string): string {
  const lines = [
    `Recovery plan ${plan.runId}: from ${source} into production, mode ${plan.mode}${plan.cascade ? ', with cascade' : ''}${plan.where ? `, where ${plan.where}` : ''}`,
    '',
    '| # | table | via | insert | update (columns) | delete |',
    '|---|---|---|---|---|---|',
    ...plan.tables.map(
      (t) =>
        `| ${t.n + 1} | ${t.table}${t.keyless ? ' (no key: whole rows)' : ''} | ${t.role === 'root' ? 'chosen' : `cascade (${t.via.join(', ')})`} | ${n(t.insert)} | ${n(t.update)}${
          Object.keys(t.updateColumns).length ? ` (${Object.entries(t.updateColumns).map(([c, k]) => `${c}: ${n(k)}`).join(', ')})` : ''
        } | ${n(t.delete)} |`,
    ),
    '',
    `Total: ${n(plan.totals.insert)} rows to insert, ${n(plan.totals.update)} to update, ${n(plan.totals.delete)} to delete; in one transaction, parents first.${
      plan.deferred.length ? ` Deferred constraints: ${plan.deferred.join(', ')}.` : ''
    }`,
    plan.deleteExtra ? 'Rows only in production that match the selection WILL BE DELETED (--delete-extra).' : 'Rows that exist only in production are kept.',
  ];
  const triggers = plan.triggers ?? [];
  if (triggers.length) {
    lines.push('', 'Triggers and rules that fire on the written rows:', ...triggers.map((t) => `- ${t.relation}: ${t.name} (${t.fires})${t.rewritesRows ? ', can rewrite the rows' : ''}`));
    if (plan.triggerPolicy === 'skip') lines.push(SKIP_LOCK_NOTE);
    else if (plan.triggerPolicy === 'fire') lines.push('--triggers fire: they run; columns they rewrite and rows they write elsewhere are reported, and undo does not reverse those side writes.');
    else lines.push('Choose --triggers skip (the branch\'s exact rows) or --triggers fire (they run, and what they change is reported).');
  }
  const incomplete = plan.incomplete ?? [];
  if (incomplete.length) {
    lines.push(
      '',
      'INCOMPLETE: rows the branch has that reference recovered rows but are not in the plan:',
      ...incomplete.map((g) => `- ${n(g.rows)} rows of ${g.partition ?? g.table} reference recovered ${g.parent} (${g.foreignKey}) and are not in the plan: add --cascade or name ${g.table}`),
    );
  }
  return lines.join('\n');
}

export function renderResult(r: RecoveryResult, source: string): string {
  const rewritten = r.tables.some((t) => Object.keys(t.rewrittenColumns ?? {}).length);
  const lines = [
    `# pitr recovery ${r.runId}`,
    '',
    renderPlan(r.plan, source),
    '',
    '## Applied',
    '',
    `| table | inserted | updated | deleted | conflicts (left as they are) | verified |${rewritten ? ' rewritten by triggers |' : ''}`,
    `|---|---|---|---|---|---|${rewritten ? '---|' : ''}`,
    ...r.tables.map(
      (t) =>
        `| ${t.table} | ${n(t.inserted)} | ${n(t.updated)} | ${n(t.deleted)} | ${n(t.conflicts)} | ${t.verifiedMismatches === 0 ? 'yes' : `NO (${t.verifiedMismatches})`} |${
          rewritten ? ` ${Object.entries(t.rewrittenColumns ?? {}).map(([c, k]) => `${c}: ${n(k)}`).join(', ') || '-'} |` : ''
        }`,
    ),
    '',
    `Plan ${r.seconds.plan.toFixed(2)} s, apply ${r.seconds.apply.toFixed(2)} s. Verified just before commit: every recovered row equals the branch's version${
      rewritten ? ', except the columns triggers rewrote (above)' : ''
    }.`,
  ];
  if (r.sideWrites?.length) {
    lines.push('', '## Written by triggers elsewhere (not reversed by undo)', '', ...r.sideWrites.map((w) => `- ${w.table}: ${n(w.inserted)} inserted, ${n(w.updated)} updated, ${n(w.deleted)} deleted`));
  }
  const conflicts = r.tables.flatMap((t) => t.conflictSamples.map((c) => `- ${t.table} ${JSON.stringify(c.key)} (${c.action}): ${c.reason}`));
  if (conflicts.length) lines.push('', '## Conflicts', '', ...conflicts);
  if (r.warnings?.length) lines.push('', '## Warnings', '', ...r.warnings.map((w) => `- ${w}`));
  lines.push('', `Undo: pitr undo ${r.runId}`);
  return lines.join('\n') + '\n';
}
