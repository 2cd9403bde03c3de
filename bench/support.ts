import pg from 'pg';

/** Ctrl-C or a kill during a benchmark still stops its servers and removes its files. */
export function cleanupOnSignal(cleanup: () => Promise<void>): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      console.error(`\n${sig}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }
}

/** `--rounds N` / `--rounds=N` / BENCH_ROUNDS, a positive integer (default `fallback`). */
export function roundsSetting(fallback = 3): number {
  const argv = process.argv.slice(2);
  const i = argv.findIndex((a) => a === '--rounds' || a.startsWith('--rounds='));
  const text = i < 0 ? process.env.BENCH_ROUNDS : argv[i]!.includes('=') ? argv[i]!.split('=')[1] : argv[i + 1];
  if (text === undefined || text === '') return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--rounds / BENCH_ROUNDS must be a positive integer, not "${text}"`);
  return n;
}

/** `--name value` / `--name=value`, else the environment variable `env`. */
export function option(name: string, env: string): string | undefined {
  const argv = process.argv.slice(2);
  const i = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return process.env[env] || undefined;
  const a = argv[i]!;
  return a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[i + 1];
}

export const fmt = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
export const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** A plain-text table: first column left-aligned, the rest right-aligned. */
export const pad = (rows: string[][]) => {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('   ')).join('\n');
};

export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * PITR_T=1: times every query pitr runs (COPY streams until they end) and prints the slowest
 * statements on stderr when `reportQueryTimes` is called. Bench-only: the core stays silent.
 */
export function traceQueries(): { reset(): void; report(title: string): void } {
  const times = new Map<string, { n: number; s: number }>();
  if (!process.env.PITR_T) return { reset: () => undefined, report: () => undefined };
  const add = (text: string, started: number) => {
    const label = text.replace(/\s+/g, ' ').slice(0, 110);
    const e = times.get(label) ?? { n: 0, s: 0 };
    e.n++;
    e.s += (performance.now() - started) / 1000;
    times.set(label, e);
  };
  const original = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  (pg.Client.prototype as unknown as { query: unknown }).query = function (this: pg.Client, ...args: unknown[]) {
    const started = performance.now();
    const q = args[0] as { text?: string; on?: (e: string, f: () => void) => void; submit?: unknown } | string;
    const text = typeof q === 'string' ? q : (q.text ?? (q as { _copyOutResponse?: unknown }).constructor?.name ?? '?');
    const r = original.apply(this, args);
    if (r && typeof (r as Promise<unknown>).then === 'function') {
      (r as Promise<unknown>).then(
        () => add(text, started),
        () => add(text, started),
      );
    } else if (r && typeof (r as { on?: unknown }).on === 'function') {
      const stream = r as { on(e: string, f: () => void): void; text?: string };
      let done = false;
      const end = () => {
        if (!done) add(`COPY ${stream.text ?? text}`, started);
        done = true;
      };
      stream.on('end', end);
      stream.on('finish', end);
    }
    return r;
  };
  return {
    reset: () => times.clear(),
    report(title: string) {
      const rows = [...times.entries()].sort((a, b) => b[1].s - a[1].s).slice(0, 25);
      process.stderr.write(`\n-- query times: ${title}\n${rows.map(([t, e]) => `${e.s.toFixed(3).padStart(8)} s ${String(e.n).padStart(5)}×  ${t}`).join('\n')}\n`);
      times.clear();
    },
  };
}
