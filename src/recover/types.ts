// src/recover: planning, applying, verifying and undoing a recovery of rows from a branch.
// Core: must not import src/cli or a concrete provider; it uses src/diff for what differs and
// src/db for sessions, and leaves rendering to src/report.
import type { ColumnInfo, FkAction } from '../db/introspect.js';
import type { ProgressSink } from '../providers/types.js';

/** The shapes a recovery is described by: its request, its plan (saved and shown before any write) and its result. */

export type RecoverMode = 'missing' | 'changed' | 'all';

/** What happens to user triggers and rules of the written tables: disabled inside the transaction, or fired. */
export type TriggerPolicy = 'skip' | 'fire';

export interface RecoverRequest {
  branchUrl: string;
  productionUrl: string;
  tables: string[];
  mode: RecoverMode;
  where?: string;
  cascade: boolean;
  deleteExtra: boolean;
  /** Required when a written table has user triggers or rules (none: nothing to choose). */
  triggers?: TriggerPolicy;
  onProgress?: ProgressSink;
}

/** A user trigger or rule that fires on rows pitr writes. */
export interface TriggerInfo {
  /** The recovered table (`schema.name`), which may be the partitioned parent of `relation`. */
  table: string;
  /** Where it is defined (`schema.name`): the table or one of its partitions. */
  relation: string;
  /** `relation` quoted for SQL. */
  relationSql: string;
  name: string;
  kind: 'trigger' | 'rule';
  /** `BEFORE INSERT OR UPDATE ROW`, `AFTER INSERT STATEMENT`, `RULE ON INSERT DO INSTEAD`, … */
  fires: string;
  /** A BEFORE row trigger or a rule can change or redirect the rows themselves. */
  rewritesRows: boolean;
}

/** Child rows the branch has, production lacks, that reference rows the plan inserts, and that the plan leaves out. */
export interface CompletenessGap {
  /** The child table as recovered (a partitioned table's root). */
  table: string;
  /** The partition holding them, for partitioned children. */
  partition: string | null;
  parent: string;
  foreignKey: string;
  rows: number;
}

/** Production rows that deleting extra rows would change through ON DELETE actions (or that would block it). */
export interface DeleteEffect {
  table: string;
  parent: string;
  foreignKey: string;
  onDelete: FkAction;
  rows: number;
}

export interface TablePlan {
  /** Position in the plan: parents first. */
  n: number;
  table: string;
  qualified: string;
  role: 'root' | 'cascade';
  /** Key used to match rows; empty for a table without one (multiset recovery, by whole rows). */
  key: string[];
  keyless: boolean;
  columns: { name: string; type: string; identity: ColumnInfo['identity'] }[];
  via: string[];
  candidates: number;
  insert: number;
  update: number;
  delete: number;
  /** Changed column → rows. */
  updateColumns: Record<string, number>;
}

export interface RecoveryPlan {
  runId: string;
  mode: RecoverMode;
  where: string | null;
  cascade: boolean;
  deleteExtra: boolean;
  tables: TablePlan[];
  /** Quoted, schema-qualified constraint names deferred to commit. */
  deferred: string[];
  totals: { insert: number; update: number; delete: number };
  /** User triggers and rules that fire on the written tables, and what pitr does with them. */
  triggers: TriggerInfo[];
  triggerPolicy: TriggerPolicy | null;
  /** Child rows referencing inserted rows that stay missing (always empty with --cascade). */
  incomplete: CompletenessGap[];
  seconds: number;
}

export interface TableOutcome {
  table: string;
  inserted: number;
  updated: number;
  deleted: number;
  conflicts: number;
  conflictSamples: { key: Record<string, string | null>; action: string; reason: string }[];
  verifiedMismatches: number;
  /** With --triggers fire: columns that triggers set to other values than the branch's, and in how many rows. */
  rewrittenColumns: Record<string, number>;
}

/** Rows that triggers wrote into tables pitr did not write to (from pg_stat_xact_user_tables). */
export interface SideWrites {
  table: string;
  inserted: number;
  updated: number;
  deleted: number;
}

export interface RecoveryResult {
  runId: string;
  plan: RecoveryPlan;
  tables: TableOutcome[];
  totals: { inserted: number; updated: number; deleted: number; conflicts: number };
  verified: boolean;
  sideWrites: SideWrites[];
  warnings: string[];
  seconds: { plan: number; apply: number };
}
