// src/drill: the restore drill (restore at a time, check, time it, clean up, notify on failure).
// Core: must not import src/cli; it reaches production only through the Provider interface and
// leaves rendering to src/report.
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PitrError } from '../errors.js';
import { withClient } from '../db/connect.js';
import { introspect } from '../db/introspect.js';
import { runUserQuery } from '../db/user-sql.js';
import { redactSecrets } from '../redact.js';
import { renderDrill } from '../report/drill.js';
import { writeRunReport } from '../report/write.js';
import type { ProgressSink, Provider } from '../providers/types.js';
import { describePointInTime, formatCompactUtc, type PointInTime } from '../time/index.js';

/**
 * The restore drill the runbook asks for every quarter, as one command: restore production at a
 * point in time, prove it is usable (every table readable, row counts close to production's,
 * the team's own SQL assertions), time it, clean up, and say loudly when anything failed.
 */
export interface DrillCheck {
  name?: string;
  sql: string;
  expect: string | number | boolean | null;
}

export interface DrillOptions {
  provider: Provider;
  at: PointInTime;
  workDir: string;
  /** Largest allowed relative difference of a table's row count, branch vs production now. */
  tolerance: number;
  checks: DrillCheck[];
  keep: boolean;
  onProgress?: ProgressSink;
}

export interface DrillResult {
  id: string;
  ok: boolean;
  target: string;
  branch: { id: string; name: string } | null;
  secondsToQueryable: number | null;
  tables: { table: string; branchRows: number; productionRows: number; ok: boolean }[];
  checks: { name: string; ok: boolean; got: string | null; expected: string | null }[];
  failures: string[];
  seconds: number;
  dir: string;
}

async function rowCountsByTable(url: string): Promise<Map<string, number>> {
  return withClient(url, async (c) => {
    await c.query('begin read only');
    const schema = await introspect(c);
    const out = new Map<string, number>();
    for (const t of schema.tables.filter((t) => t.kind !== 'partition')) {
      const { rows } = await c.query(`select count(*)::int8 as n from ${t.qualified}`);
      out.set(`${t.schema}.${t.name}`, Number(rows[0].n));
    }
    await c.query('rollback');
    return out;
  });
}

export async function runDrill(o: DrillOptions): Promise<DrillResult> {
  const started = Date.now();
  const id = `drill-${formatCompactUtc(new Date(started))}-${randomBytes(2).toString('hex')}`;
  const dir = join(o.workDir, 'drills', id);
  await mkdir(dir, { recursive: true });
  const result: DrillResult = { id, ok: false, target: describePointInTime(o.at), branch: null, secondsToQueryable: null, tables: [], checks: [], failures: [], seconds: 0, dir };
  let branchId: string | null = null;
  try {
    o.onProgress?.({ phase: 'drill', message: `restoring production at ${describePointInTime(o.at)}` });
    const branch = await o.provider.createRecoveryBranch(o.at, { ttlMs: 2 * 3600_000, name: id, ...(o.onProgress && { onProgress: o.onProgress }) });
    branchId = branch.id;
    result.branch = { id: branch.id, name: branch.name };
    result.secondsToQueryable = branch.secondsToQueryable;
    const branchUrl = await o.provider.connectionString(branch.id);
    o.onProgress?.({ phase: 'drill', message: 'reading every table on the restored copy and on production' });
    const [restored, production] = await Promise.all([rowCountsByTable(branchUrl), rowCountsByTable(await o.provider.productionUrl())]);
    for (const [table, branchRows] of restored) {
      const productionRows = production.get(table) ?? 0;
      const ok = Math.abs(branchRows - productionRows) <= o.tolerance * Math.max(productionRows, 1);
      result.tables.push({ table, branchRows, productionRows, ok });
      if (!ok) result.failures.push(`${table}: ${branchRows} rows restored vs ${productionRows} in production (more than ${(o.tolerance * 100).toFixed(1)}% apart)`);
    }
    for (const table of production.keys()) if (!restored.has(table)) result.failures.push(`${table} exists in production but not in the restored copy`);
    for (const [i, check] of o.checks.entries()) {
      const name = check.name ?? `check ${i + 1}`;
      const got = await runUserQuery(branchUrl, check.sql, { what: `drill check "${name}"` }).then(
        (v) => (v === null ? null : String(v)),
        (err: Error) => `error: ${err.message}`,
      );
      const expected = check.expect === null ? null : String(check.expect);
      const ok = got === expected;
      result.checks.push({ name, ok, got, expected });
      if (!ok) result.failures.push(`${name}: expected ${expected}, got ${got}`);
    }
  } catch (err) {
    result.failures.push(err instanceof PitrError ? `restore failed: ${err.message}` : `drill failed: ${(err as Error).message}`);
  } finally {
    if (branchId && !o.keep) await o.provider.deleteRecoveryBranch(branchId).catch((err: Error) => result.failures.push(`could not delete the drill branch: ${err.message}`));
  }
  result.ok = result.failures.length === 0;
  result.seconds = (Date.now() - started) / 1000;
  await writeRunReport(dir, result, renderDrill(result));
  return result;
}

/** A Slack-compatible message (`{ text }`), secrets redacted. */
export async function notifyFailure(webhook: string, r: DrillResult, source: string): Promise<void> {
  const text = redactSecrets(`:rotating_light: pitr restore drill FAILED for ${source} (target ${r.target}):\n${r.failures.map((f) => `• ${f}`).join('\n')}\nReport: ${r.dir}/report.md`);
  const res = await fetch(webhook, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text }), signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new PitrError('notify_failed', `the webhook answered ${res.status}`);
}
