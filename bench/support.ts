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
