// src/diff: comparing a branch with production (schema, per-table impact, rows, hashed segments).
// Core: must not import src/cli, src/recover or a concrete provider (only providers/types.ts); it
// knows SQL, nothing about how a branch was made.
import type pg from 'pg';
import type { TableInfo } from '../db/introspect.js';
import type { ProgressSink } from '../providers/types.js';

export type Values = Record<string, string | null>;

export type DifferenceKind = 'missing' | 'changed' | 'extra';

export interface RowDifference {
  /** missing: in the branch, not in production (deleted since); changed: same key, other values; extra: only in production. */
  kind: DifferenceKind;
  key: Values | null;
  branch: Values | null;
  production: Values | null;
  changedColumns: string[];
  /** Multiset mode: how many copies of this row differ. */
  count: number;
}

/**
 * One differing key, without its row: what recovery plans from. In key mode `key` holds the
 * key columns' text in key-column order; in multiset mode (no key) `key` is null and `rowHash`
 * names the row by its 64-bit hash, `count` saying how many copies differ.
 */
export interface KeyDifference {
  kind: DifferenceKind;
  key: string[] | null;
  rowHash: string | null;
  count: number;
}

export interface RowDiffSummary {
  table: string;
  mode: 'key' | 'multiset';
  keyColumns: string[];
  comparedColumns: string[];
  /** Columns not compared because they exist on one side only or changed type. */
  skippedColumns: string[];
  branchRows: number;
  productionRows: number;
  missing: number;
  changed: number;
  extra: number;
  /**
   * initial: segments of the first checksum pass; checked: halves checksummed while bisecting;
   * fetched: segments settled by streaming (key, row hash) pairs.
   */
  segments: { initial: number; checked: number; fetched: number };
  /** Connections used per side (one shared snapshot). */
  jobs: number;
  seconds: number;
}

/** Opens one more connection to a side; the engine puts it on the caller's snapshot. */
export type Connector = () => Promise<pg.Client>;

export interface DiffKeysOptions {
  branch: pg.ClientBase;
  production: pg.ClientBase;
  branchTable: TableInfo;
  productionTable: TableInfo;
  /** Extra filter applied on both sides (inside the caller's read-only transaction). */
  where?: string;
  /** Compare only these columns (plus the key). */
  columns?: string[];
  /**
   * Connections per side (default: from the servers' max_parallel_workers_per_gather, 1–4).
   * More than 1 needs `connect`; every job reads the snapshot of `branch`/`production`.
   */
  jobs?: number;
  connect?: { branch: Connector; production: Connector };
  /** Rows per initial segment the first pass aims at (default 64). */
  segmentRows?: number;
  /** Tests force a path: always bisect down to `segmentRows`, or never bisect. Default: by cost. */
  strategy?: 'auto' | 'bisect' | 'stream';
  /** Tests force settling every segment without the first pass (true) or forbid it (false). Default: from a sample of the changes (dense.ts). */
  skipChecksums?: boolean;
  /** Rows (both sides) per streamed batch, the unit of parallel work and of memory (default 50,000). */
  batchRows?: number;
  /** The most rows (both sides) a segment may hold for its `key:hash` pairs to come back as one text per side instead of COPY rows (default 100,000). */
  packedRows?: number;
  onProgress?: ProgressSink;
  signal?: AbortSignal;
}

export interface RowDiffOptions extends DiffKeysOptions {
  /** Called for each difference, in segment order (key order, see engine.ts). */
  onDifference?: (d: RowDifference) => void | Promise<void>;
}
