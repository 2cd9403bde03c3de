import type { DrillResult } from '../drill/index.js';

/** A drill's report.md. */
export function renderDrill(r: DrillResult): string {
  return [
    `# Restore drill ${r.id}: ${r.ok ? 'PASSED' : 'FAILED'}`,
    '',
    `Target ${r.target}; restored copy queryable in ${r.secondsToQueryable?.toFixed(1) ?? '-'} s; drill took ${r.seconds.toFixed(1)} s.`,
    '',
    '| table | restored rows | production rows | ok |',
    '|---|---|---|---|',
    ...r.tables.map((t) => `| ${t.table} | ${t.branchRows} | ${t.productionRows} | ${t.ok ? 'yes' : 'NO'} |`),
    '',
    ...(r.checks.length ? ['| check | expected | got | ok |', '|---|---|---|---|', ...r.checks.map((c) => `| ${c.name} | ${c.expected} | ${c.got} | ${c.ok ? 'yes' : 'NO'} |`), ''] : []),
    ...(r.failures.length ? ['Failures:', ...r.failures.map((f) => `- ${f}`), ''] : []),
  ].join('\n');
}
