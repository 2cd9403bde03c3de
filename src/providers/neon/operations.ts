import type { Operation } from '@neondatabase/api-client';
import { PitrError } from '../../errors.js';
import type { ProgressSink } from '../types.js';
import type { NeonApi } from './api.js';

const DONE = new Set(['finished', 'skipped']);
const FAILED = new Set(['failed', 'error', 'cancelled', 'cancelling']);

export interface WaitOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  onProgress?: ProgressSink;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Waits until every operation a mutation started has finished. Polls every 250 ms for the first
 * 10 s (most operations take a few seconds, and each poll interval is time the user waits for
 * nothing), then backs off to every 2 s as Neon asks; well under its 11 requests/s limit.
 */
export async function waitForOperations(api: NeonApi, projectId: string, operations: readonly Operation[], options: WaitOptions): Promise<void> {
  const sleep = options.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
  const deadline = Date.now() + options.timeoutMs;
  const pending = new Map(operations.filter((op) => !DONE.has(op.status)).map((op) => [op.id, op]));
  const fastUntil = Date.now() + 10_000;
  let delay = 250;
  while (pending.size > 0) {
    // All pending operations at once: polling them in turn adds a round trip per operation.
    const polled = await Promise.all([...pending.values()].map((op) => api.call(`operation ${op.action} ${op.id}`, (c) => c.getProjectOperation(projectId, op.id))));
    for (const { operation } of polled) {
      if (DONE.has(operation.status)) pending.delete(operation.id);
      else if (FAILED.has(operation.status)) {
        throw new PitrError('neon_operation_failed', `Neon operation ${operation.action} (${operation.id}) ${operation.status}: ${operation.error ?? 'no error given'}`);
      } else pending.set(operation.id, operation);
    }
    if (pending.size === 0) return;
    if (options.signal?.aborted) throw new PitrError('interrupted', 'interrupted while waiting for Neon');
    if (Date.now() + delay > deadline) {
      const waiting = [...pending.values()].map((op) => `${op.action} (${op.id}) ${op.status}`).join(', ');
      throw new PitrError('neon_timeout', `timed out after ${Math.round(options.timeoutMs / 1000)} s waiting for Neon: ${waiting}; raise --timeout or check the Neon console`);
    }
    options.onProgress?.({ phase: 'neon', message: `waiting for ${[...pending.values()].map((op) => `${op.action} (${op.status})`).join(', ')}` });
    await sleep(delay);
    if (Date.now() > fastUntil) delay = Math.min(2000, Math.round(delay * 1.5));
  }
}
