import { badInput } from '../errors.js';
import { LocalProvider } from '../providers/local/index.js';
import type { ProgressSink, Provider } from '../providers/types.js';
import { parsePointInTime } from '../time/index.js';
import { countQuery, parsePrecision, rowQuery, sqlQuery, whenLocal, whenTimeTravel, type WhenQuery } from '../when/index.js';

export interface FindStepInput {
  given?: string | undefined;
  count?: string | undefined;
  where?: string | undefined;
  row?: string[] | undefined;
  sql?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  precision?: string | undefined;
  timeline?: boolean | undefined;
}

const filled = (v: string | undefined): v is string => v !== undefined && v.trim() !== '';

/**
 * The question a find step asks, or null when `given` answers it. Playbook inputs arrive
 * interpolated, so an input left at its empty default means "not asked": `sql` wins over
 * `count`, `count` over `row`. With neither an instant nor a question, the step cannot run.
 */
export function findQuestion(w: FindStepInput): WhenQuery | null {
  if (filled(w.given)) return null;
  if (filled(w.sql)) return sqlQuery(w.sql);
  if (filled(w.count)) return countQuery(w.count, filled(w.where) && w.where.trim() !== 'true' ? w.where : undefined);
  const row = (w.row ?? []).filter(filled);
  if (row.length >= 2) return rowQuery(row[0]!, row.slice(1));
  throw badInput('missing_input', 'needs --set at=<time>, or a question for pitr when to find that instant (find_count=<table> or find_sql=<query> in the shipped playbooks)');
}

/**
 * The `find` playbook step: `pitr when`, its answer as the step's `at` output (the exact
 * transaction when the WAL timeline names it, else the last good instant). An instant given
 * (`given`, usually `${{ inputs.at }}`) is passed on and nothing is searched.
 */
export async function findStep(w: FindStepInput, provider: Provider, timeZone: string | undefined, onProgress: ProgressSink | undefined): Promise<Record<string, unknown>> {
  const query = findQuestion(w);
  if (!query) {
    const at = w.given!.trim();
    // export:<object> is checked by create-branch (it needs the key and the store).
    if (!at.startsWith('export:')) parsePointInTime(at, { ...(timeZone && { timeZone }) });
    return { at, searched: false };
  }
  const read = (text: string) => parsePointInTime(text, { ...(timeZone && { timeZone }) });
  const request = {
    query,
    precision: parsePrecision(filled(w.precision) ? w.precision : '1s'),
    ...(filled(w.since) && { since: read(w.since) }),
    ...(filled(w.until) && { until: read(w.until) }),
    ...(onProgress && { onProgress: (message: string) => onProgress({ phase: 'find', message }) }),
  };
  // The timeline names the exact transaction; without a WAL archive directory, bisect over time
  // unless the playbook asked for the timeline outright.
  const timeline = w.timeline === false ? undefined : { tables: query.tables, ...(w.timeline === undefined && { whenArchived: true }) };
  const r = provider instanceof LocalProvider ? await whenLocal(provider, { ...request, ...(timeline && { timeline }) }) : await whenTimeTravel(provider, request);
  return { at: r.at, searched: true, lastGood: r.lastGood, firstBad: r.firstBad, culprit: r.culprit, probes: r.probes.length };
}

/**
 * Before any step runs: a find step whose inputs give neither an instant nor a question is a
 * missing input (exit 2), not a failure half-way. Steps that refer to earlier steps are checked
 * when they run.
 */
export function refuseUnanswerableFind(resolve: () => FindStepInput): void {
  let w: FindStepInput;
  try {
    w = resolve();
  } catch {
    return;
  }
  findQuestion(w);
}
