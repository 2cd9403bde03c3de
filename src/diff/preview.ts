import type pg from 'pg';
import { PitrError } from '../errors.js';
import { connect } from '../db/connect.js';
import { findTable, introspect, type SchemaInfo, type TableInfo } from '../db/introspect.js';
import { parseTableName } from '../db/sql.js';
import type { ProgressSink } from '../providers/types.js';
import { beginDiffSession, diffRows, endDiffSession, type Connector, type RowDifference, type RowDiffSummary } from './rows.js';
import { diffSchemas, type SchemaDiff } from './schema.js';

/** Two open, read-only, identically configured sessions: the branch (the past) and production (now). */
export interface DiffSessions {
  branch: pg.Client;
  production: pg.Client;
  branchSchema: SchemaInfo;
  productionSchema: SchemaInfo;
  /** More connections to each side, for --jobs (the engine puts them on the sessions' snapshot). */
  connect: { branch: Connector; production: Connector };
  close(): Promise<void>;
}

export async function openDiffSessions(branchUrl: string, productionUrl: string): Promise<DiffSessions> {
  const [branch, production] = await Promise.all([connect(branchUrl), connect(productionUrl)]);
  try {
    await Promise.all([beginDiffSession(branch), beginDiffSession(production)]);
    const [branchSchema, productionSchema] = await Promise.all([introspect(branch), introspect(production)]);
    return {
      branch,
      production,
      branchSchema,
      productionSchema,
      connect: { branch: () => connect(branchUrl), production: () => connect(productionUrl) },
      async close() {
        await Promise.all([endDiffSession(branch), endDiffSession(production)]);
        await Promise.all([branch.end().catch(() => undefined), production.end().catch(() => undefined)]);
      },
    };
  } catch (err) {
    await Promise.all([branch.end().catch(() => undefined), production.end().catch(() => undefined)]);
    throw err;
  }
}

/** Finds a table on both sides, or says clearly which side lacks it. */
export function resolveTable(sessions: DiffSessions, name: string): { branch: TableInfo; production: TableInfo } {
  let wanted;
  try {
    wanted = parseTableName(name);
  } catch (err) {
    throw new PitrError('bad_table', (err as Error).message, { exit: 'usage' });
  }
  const branch = findTable(sessions.branchSchema, wanted);
  const production = findTable(sessions.productionSchema, wanted);
  if (!branch && !production) {
    const known = sessions.productionSchema.tables.map((t) => (t.schema === 'public' ? t.name : `${t.schema}.${t.name}`)).join(', ');
    throw new PitrError('unknown_table', `unknown table ${name} (tables: ${known || 'none'})`, { exit: 'usage' });
  }
  if (!branch) throw new PitrError('table_not_in_branch', `table ${name} does not exist in the branch (it was created after the branch's point in time)`, { exit: 'usage' });
  if (!production) throw new PitrError('table_not_in_production', `table ${name} no longer exists in production (dropped since the branch's point in time)`, { exit: 'usage' });
  return { branch, production };
}

export interface TablePreview extends RowDiffSummary {
  /** How many changed rows touched each column. */
  changedColumnCounts: Record<string, number>;
}

export interface Preview {
  schema: SchemaDiff;
  tables: TablePreview[];
  seconds: number;
}

/**
 * Schema diff plus, per table present on both sides, row counts and how many rows are missing,
 * changed or only in production; sorted by impact (most affected rows first).
 */
export async function preview(sessions: DiffSessions, options: { tables?: string[]; schemaOnly?: boolean; jobs?: number; onProgress?: ProgressSink } = {}): Promise<Preview> {
  const started = Date.now();
  const schema = diffSchemas(sessions.branchSchema, sessions.productionSchema);
  const tables: TablePreview[] = [];
  if (!options.schemaOnly) {
    const pairs = options.tables?.length
      ? options.tables.map((t) => resolveTable(sessions, t))
      : sessions.branchSchema.tables
          // Partitions, sub-partitioned ones included, are compared through their topmost parent, as recovery writes them.
          .filter((t) => !t.root)
          .map((t) => ({ branch: t, production: findTable(sessions.productionSchema, { schema: t.schema, name: t.name }) }))
          .filter((p): p is { branch: TableInfo; production: TableInfo } => !!p.production);
    for (const [i, pair] of pairs.entries()) {
      const label = `${pair.branch.schema}.${pair.branch.name} (${i + 1}/${pairs.length})`;
      options.onProgress?.({ phase: 'preview', message: `comparing ${label}`, fraction: i / pairs.length });
      const changedColumnCounts: Record<string, number> = {};
      const summary = await diffRows({
        branch: sessions.branch,
        production: sessions.production,
        branchTable: pair.branch,
        productionTable: pair.production,
        connect: sessions.connect,
        ...(options.jobs !== undefined && { jobs: options.jobs }),
        // Per-table progress: the engine's batches, as a fraction of this table's share.
        onProgress: (e) => options.onProgress?.({ phase: 'preview', message: `${label}: ${e.message.replace(/^[^:]*: /, '')}`, fraction: (i + (e.fraction ?? 0)) / pairs.length }),
        onDifference: (d: RowDifference) => {
          for (const c of d.changedColumns) changedColumnCounts[c] = (changedColumnCounts[c] ?? 0) + 1;
        },
      });
      tables.push({ ...summary, changedColumnCounts });
    }
    tables.sort((a, b) => b.missing + b.changed + b.extra - (a.missing + a.changed + a.extra) || a.table.localeCompare(b.table));
  }
  return { schema, tables, seconds: (Date.now() - started) / 1000 };
}
