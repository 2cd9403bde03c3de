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

/** The `find` playbook step: `pitr when`, its answer as the step's `at` output. */
export async function findStep(w: FindStepInput, provider: Provider, timeZone: string | undefined, onProgress: ProgressSink | undefined): Promise<Record<string, unknown>> {
  const read = (text: string) => parsePointInTime(text, { ...(timeZone && { timeZone }) });
  if (w.given !== undefined && w.given.trim() !== '') {
    read(w.given);
    return { at: w.given.trim(), searched: false };
  }
  let query: WhenQuery;
  if (w.sql) query = sqlQuery(w.sql);
  else if (w.count) query = countQuery(w.count, w.where);
  else if (w.row && w.row.length >= 2) query = rowQuery(w.row[0]!, w.row.slice(1));
  else throw badInput('find_question', 'a find step needs with.count, with.row ([table, key…]) or with.sql');
  const request = {
    query,
    precision: parsePrecision(w.precision ?? '1s'),
    ...(w.since && { since: read(w.since) }),
    ...(w.until && { until: read(w.until) }),
    ...(onProgress && { onProgress: (message: string) => onProgress({ phase: 'find', message }) }),
  };
  const r =
    provider instanceof LocalProvider
      ? await whenLocal(provider, { ...request, ...(w.timeline && { timeline: { tables: query.tables } }) })
      : await whenTimeTravel(provider, request);
  return { at: r.at, searched: true, lastGood: r.lastGood, firstBad: r.firstBad, culprit: r.culprit, probes: r.probes.length };
}
