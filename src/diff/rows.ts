import type pg from 'pg';
import { normalizeSession } from '../db/session.js';
import { diffKeys, diffRowsWith } from './engine.js';
import { tuneDiffSession } from './jobs.js';
import type { RowDiffOptions, RowDiffSummary } from './types.js';

/**
 * Row diff between a recovery branch (the past) and production (now): the public entry points.
 * How it works is in engine.ts.
 */
export type { Connector, DiffKeysOptions, DifferenceKind, KeyDifference, RowDifference, RowDiffOptions, RowDiffSummary, Values } from './types.js';
export { diffKeys };
export { planRowDiff } from './plan.js';

/**
 * Every text rendering must be identical on both sides, or equal rows would hash differently:
 * the caller runs this once per connection, inside the transaction used for the diff.
 */
export async function beginDiffSession(client: pg.ClientBase): Promise<void> {
  // REPEATABLE READ: one snapshot for the many queries a diff runs while production keeps changing.
  await client.query('begin isolation level repeatable read read only');
  await normalizeSession(client, 'pitr diff');
  await tuneDiffSession(client);
}

export async function endDiffSession(client: pg.ClientBase): Promise<void> {
  await client.query('rollback').catch(() => undefined);
}

export async function diffRows(options: RowDiffOptions): Promise<RowDiffSummary> {
  return diffRowsWith(options);
}
