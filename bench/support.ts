/** Ctrl-C or a kill during a benchmark still stops its servers and removes its files. */
export function cleanupOnSignal(cleanup: () => Promise<void>): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      console.error(`\n${sig}: cleaning up`);
      void cleanup().finally(() => process.exit(130));
    });
  }
}
