import type { PlaybookReport } from '../playbooks/run.js';

/** A playbook run's report.md: every step with its status, time and outputs. */
export function renderPlaybookReport(r: PlaybookReport): string {
  return [
    `# Playbook ${r.playbook}: ${r.status}${r.dryRun ? ' (dry run)' : ''}`,
    '',
    `Run ${r.id}, ${r.startedAt} → ${r.endedAt}.${r.rtoSeconds !== null ? ` Measured RTO (start → verified recovery): ${r.rtoSeconds.toFixed(1)} s.` : ''}`,
    '',
    `Inputs: ${Object.entries(r.inputs).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ') || 'none'}`,
    '',
    '| # | step | status | seconds | result |',
    '|---|---|---|---|---|',
    ...r.steps.map((s) => `| ${s.index + 1} | ${s.id ?? s.type} (${s.type}) | ${s.status} | ${s.seconds.toFixed(2)} | ${(s.error ?? JSON.stringify(s.outputs)).replace(/\|/g, '\\|').slice(0, 200)} |`),
    '',
  ].join('\n');
}
