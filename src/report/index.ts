// src/report: how results read for people (recover runs, drills, playbooks, exports) and the one
// writer of a run's report.json + report.md. Core: it must not import src/cli; it only renders
// results the other core folders return (type imports) and never runs anything itself.
export { formatBytes, formatCount, markdownCell, renderFields, renderTable } from './format.js';
export { renderDrill } from './drill.js';
export { renderExport, renderExportList, renderRestoreMarkdown, renderVerify, writeRestoreReport } from './export.js';
export { renderPlaybookReport } from './playbook.js';
export { renderPlan, renderResult } from './recover.js';
export { writeRunReport } from './write.js';
