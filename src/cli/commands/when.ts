import { badInput } from '../../errors.js';
import { countQuery, localTimeline, parsePrecision, rowQuery, sqlQuery, whenLocal, whenTimeTravel, type Timeline, type WhenQuery, type WhenResult } from '../../when/index.js';
import { renderFields, renderTable } from '../output.js';
import type { CommandRunner } from '../program.js';

interface WhenOptions {
  sql?: string;
  row?: string[];
  count?: string;
  where?: string;
  since?: string;
  until?: string;
  precision: string;
  timeline?: boolean;
  tables?: string;
  minRows?: string;
}

/** With an answer, the timeline is context: its largest transactions, in time order. */
const LARGEST_SHOWN = 10;

/** The timeline as printed: `commits` (every commit in the window) is bisection's working set, not output. */
type PrintedTimeline = Omit<Timeline, 'commits'> & { count?: number };
type PrintedResult = Omit<WhenResult, 'timeline'> & { timeline?: PrintedTimeline };

const printable = ({ commits: _all, ...t }: Timeline): PrintedTimeline => t;

/**
 * With an answer the timeline is context: its largest transactions in time order and how many
 * there are. An hour of WAL holds hundreds of thousands, which made --json a 100 MB document;
 * `pitr when --timeline --json` lists them all.
 */
function asContext(t: Timeline): PrintedTimeline {
  if (t.transactions.length <= LARGEST_SHOWN) return printable(t);
  const largest = new Set([...t.transactions].sort((a, b) => b.rows - a.rows).slice(0, LARGEST_SHOWN));
  return { ...printable(t), transactions: t.transactions.filter((x) => largest.has(x)), count: t.transactions.length };
}

function renderTimeline(t: PrintedTimeline): string {
  const total = t.count ?? t.transactions.length;
  const rows = t.transactions.map((x) => [
    x.committedAt,
    x.xid,
    x.commitLsn,
    Object.entries(x.tables)
      .map(([name, c]) => `${name} +${c.inserted} ~${c.updated} -${c.deleted}`)
      .join(', '),
  ]);
  const head = `${total} transaction(s) touched the tables between ${t.from} and ${t.to} (WAL ${t.segments.first} → ${t.segments.last})`;
  const more = total > t.transactions.length ? [`… and ${total - t.transactions.length} smaller ones (all of them: pitr when --timeline)`] : [];
  return [total > t.transactions.length ? `${head}; the ${t.transactions.length} largest:` : `${head}:`, renderTable([['committed at', 'xid', 'commit LSN', 'rows (+inserted ~updated -deleted)'], ...rows]), ...more].join('\n');
}

const show = (v: unknown): string => {
  const text = JSON.stringify(v);
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
};

function render(r: PrintedResult): string {
  const exact = r.culprit ? ` by transaction ${r.culprit.xid}, committed at ${r.culprit.committedAt}` : '';
  const exactLine = r.timeline ? ['', renderTimeline(r.timeline)] : [];
  return [
    `The result changed between ${r.lastGood} and ${r.firstBad}${exact}.`,
    renderFields([
      ['query', r.query],
      ['last good', `${r.lastGood}  ${show(r.good)}`],
      ['first bad', `${r.firstBad}  ${show(r.bad)}`],
      ['window', `${r.since} → ${r.until}`],
      ['probes', `${r.probes.length} (${r.restores} restores, ${r.forwardReplays} forward replays) in ${r.seconds.toFixed(1)} s`],
    ]),
    '',
    'Next:',
    `  pitr --at ${r.at}` + (r.culprit && r.provider === 'local' ? '          # every commit before that transaction, nothing of it' : ''),
    `  pitr playbook run accidental-deletion --set at=${r.at}`,
    ...exactLine,
  ].join('\n');
}

function chooseQuery(o: WhenOptions): WhenQuery | undefined {
  if (o.timeline && o.sql === undefined && o.row === undefined && o.count === undefined) return undefined;
  const given = [o.sql !== undefined, o.row !== undefined, o.count !== undefined].filter(Boolean).length;
  if (given !== 1) throw badInput('when_question', 'give exactly one of --sql "<query>", --row <table> <key…> or --count <table>');
  if (o.where !== undefined && o.count === undefined) throw badInput('when_where', '--where goes with --count');
  if (o.sql !== undefined) return sqlQuery(o.sql);
  if (o.count !== undefined) return countQuery(o.count, o.where);
  const [table, ...key] = o.row!;
  if (!table || key.length === 0) throw badInput('when_row', '--row needs a table and the value(s) of its primary key, e.g. --row orders 42');
  return rowQuery(table, key);
}

export const register: CommandRunner = (program, run) => {
  program
    .command('when')
    .description("find the instant a query's result changed, by bisection over past states: the moment to branch from")
    .option('--sql <query>', 'any read-only query: when did its rows change from their value at --since')
    .option('--row <table-and-key...>', 'a table and its primary key values: when did this row start to look as it does now (or disappear)')
    .option('--count <table>', "when did the table's row count drop")
    .option('--where <condition>', 'with --count: count only the rows that match')
    .option('--since <time>', 'start of the search (default: the start of the recoverable window)')
    .option('--until <time>', 'end of the search (default: now)')
    .option('--timeline', 'local: list the transactions that touched the tables, from the archived WAL; with a question, name the exact transaction')
    .option('--tables <list>', 'with --timeline: comma-separated tables (partitions included; default: the tables of the question, else all)')
    .option('--min-rows <n>', 'with --timeline: only transactions that touched at least n rows')
    .option('--precision <span>', 'stop when the change is pinned this closely (1s, 250ms, or exact to name the transaction)', '1s')
    .action(
      run<WhenOptions>(async (ctx, o) => {
        const query = chooseQuery(o);
        const precision = parsePrecision(o.precision);
        const since = o.since !== undefined ? ctx.readTime(o.since) : undefined;
        const until = o.until !== undefined ? ctx.readTime(o.until) : undefined;
        const provider = await ctx.provider();
        const minRows = o.minRows === undefined ? undefined : Number(o.minRows);
        if (minRows !== undefined && !(Number.isInteger(minRows) && minRows >= 0)) throw badInput('bad_min_rows', `--min-rows takes a whole number (got ${o.minRows})`);
        if (o.timeline && provider.kind !== 'local') throw badInput('timeline_local_only', '--timeline reads the WAL archive, which only the local provider has; with Neon, bisect to a time or LSN');
        const tables = o.tables ? o.tables.split(',').map((t) => t.trim()).filter(Boolean) : (query?.tables ?? []);
        const timeline = o.timeline ? { tables, ...(minRows !== undefined && { minRows }) } : undefined;
        if (!query) {
          const t = await localTimeline(await ctx.localProvider(), { ...timeline!, ...(since && { since }), ...(until && { until }), onProgress: (message) => ctx.output.progress({ phase: 'timeline', message }) });
          ctx.output.result(printable(t), renderTimeline, { reveal: true });
          return 0;
        }
        const request = {
          ...(timeline && { timeline }),
          query,
          precision,
          ...(since && { since }),
          ...(until && { until }),
          onProbe: (text: string, n: number, estimate: number) =>
            ctx.output.progress({ phase: 'when', message: `probe ${n} of ~${estimate}: ${text}`, fraction: Math.min(1, n / estimate) }),
          onProgress: (message: string) => ctx.output.progress({ phase: 'probe', message }),
        };
        const result = provider.kind === 'local' ? await whenLocal(await ctx.localProvider(), request) : await whenTimeTravel(provider, request);
        const { timeline: read, ...answer } = result;
        ctx.output.result<PrintedResult>(read ? { ...answer, timeline: asContext(read) } : answer, render, { reveal: true });
        return 0;
      }),
    );
};
