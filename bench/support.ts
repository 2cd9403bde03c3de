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
