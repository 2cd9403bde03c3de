import { StringDecoder } from 'node:string_decoder';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';

/**
 * The naive full comparison a person writes: `COPY (select … order by id) TO STDOUT` on both
 * sides at once, the two key-ordered streams merged line by line (integer key first).
 */
export interface NaiveResult {
  branchRows: number;
  productionRows: number;
  missing: number;
  changed: number;
  extra: number;
}

async function* copyLines(client: pg.ClientBase, sql: string): AsyncGenerator<string[]> {
  const stream = client.query(copyTo(`copy (${sql}) to stdout`));
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const lines = (rest + decoder.write(chunk)).split('\n');
    rest = lines.pop()!;
    if (lines.length) yield lines;
  }
  rest += decoder.end();
  if (rest) yield [rest];
}

class Cursor {
  private batch: string[] = [];
  private i = 0;
  rows = 0;
  constructor(private readonly source: AsyncIterator<string[]>) {}
  async fill(): Promise<boolean> {
    while (this.i >= this.batch.length) {
      const next = await this.source.next();
      if (next.done) return false;
      this.batch = next.value;
      this.i = 0;
    }
    return true;
  }
  get line(): string {
    return this.batch[this.i]!;
  }
  advance(): boolean {
    this.i++;
    this.rows++;
    return this.i < this.batch.length;
  }
}

export async function naiveDiff(branch: pg.ClientBase, production: pg.ClientBase, sql: string): Promise<NaiveResult> {
  const b = new Cursor(copyLines(branch, sql));
  const p = new Cursor(copyLines(production, sql));
  const out: NaiveResult = { branchRows: 0, productionRows: 0, missing: 0, changed: 0, extra: 0 };
  const key = (line: string) => Number(line.slice(0, line.indexOf('\t')));
  let [hasB, hasP] = await Promise.all([b.fill(), p.fill()]);
  while (hasB || hasP) {
    let moreB = true;
    let moreP = true;
    if (hasB && hasP) {
      const kb = key(b.line);
      const kp = key(p.line);
      if (kb === kp) {
        if (b.line !== p.line) out.changed++;
        moreB = b.advance();
        moreP = p.advance();
      } else if (kb < kp) {
        out.missing++;
        moreB = b.advance();
      } else {
        out.extra++;
        moreP = p.advance();
      }
    } else if (hasB) {
      out.missing++;
      moreB = b.advance();
    } else {
      out.extra++;
      moreP = p.advance();
    }
    if (hasB && !moreB) hasB = await b.fill();
    if (hasP && !moreP) hasP = await p.fill();
  }
  out.branchRows = b.rows;
  out.productionRows = p.rows;
  return out;
}

/**
 * Run as a script (`tsx bench/naive-diff.ts <branchUrl> <productionUrl> <select>`), so that its
 * memory and buffers never count in the process that measures pitr: prints one JSON line with
 * the result, the seconds from the first COPY to the end of the merge, and its peak RSS.
 */
if (process.argv[1] && (await import('node:url')).fileURLToPath(import.meta.url) === (await import('node:path')).resolve(process.argv[1])) {
  const [branchUrl, productionUrl, select] = process.argv.slice(2) as [string, string, string];
  const { default: pgClient } = await import('pg');
  const { normalizeSession } = await import('../src/db/session.js');
  const open = async (url: string) => {
    const c = new pgClient.Client({ connectionString: url });
    await c.connect();
    await c.query('begin isolation level repeatable read read only');
    await normalizeSession(c);
    return c;
  };
  const [b, p] = await Promise.all([open(branchUrl), open(productionUrl)]);
  let peak = process.memoryUsage.rss();
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  const started = performance.now();
  const result = await naiveDiff(b, p, select);
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  await Promise.all([b.end(), p.end()]);
  console.log(JSON.stringify({ result, seconds, peakRssMB: Math.max(peak, process.memoryUsage.rss()) / 1024 / 1024 }));
}
