import { withClient } from '../db/connect.js';
import type { RunState, RunStore } from './runs.js';

/**
 * A run interrupted while applying (the CLI was killed) is settled by asking production what
 * became of its transaction: committed means applied, anything else means nothing changed.
 */
export async function settleRun(store: RunStore, run: RunState, productionUrl: string): Promise<RunState> {
  if (run.status !== 'applying' || !run.txid) return run;
  const status = await withClient(productionUrl, async (c) => (await c.query('select txid_status($1::int8) as s', [run.txid])).rows[0]?.s as string | null);
  if (status === 'in progress') return run;
  run.status = status === 'committed' ? 'applied' : 'failed';
  if (run.status === 'failed') run.error = 'interrupted before commit: production was not changed';
  await store.save(run);
  return run;
}
