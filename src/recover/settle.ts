import { withClient } from '../db/connect.js';
import type { RunState, RunStore } from './runs.js';

/**
 * A run interrupted while applying (the CLI was killed, the connection dropped during COMMIT) is
 * settled by asking production what became of its transaction: committed means applied, aborted
 * means nothing changed; while production cannot say, the run stays unknown.
 */
export async function settleRun(store: RunStore, run: RunState, productionUrl: string): Promise<RunState> {
  if ((run.status !== 'applying' && run.status !== 'unknown') || !run.txid) return run;
  const status = await withClient(productionUrl, async (c) => (await c.query('select txid_status($1::int8) as s', [run.txid])).rows[0]?.s as string | null);
  if (status === 'in progress') return run;
  run.status = status === 'committed' ? 'applied' : status === 'aborted' ? 'failed' : 'unknown';
  if (run.status === 'failed') run.error = 'interrupted before commit: production was not changed';
  if (run.status === 'applied') delete run.error;
  await store.save(run);
  return run;
}
