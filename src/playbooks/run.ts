// src/playbooks: loading, validating and running incident playbooks (YAML steps over the features).
// Core: must not import src/cli; it composes the feature folders (diff, recover, export, when)
// and writes its report through src/report.
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { badInput, PitrError, refused } from '../errors.js';
import { withClient } from '../db/connect.js';
import { parseTableName, qualifiedName } from '../db/sql.js';
import { runUserQuery } from '../db/user-sql.js';
import { openDiffSessions, preview, resolveTable } from '../diff/preview.js';
import { diffRows, type RowDifference } from '../diff/rows.js';
import { applyRecovery, planRecovery } from '../recover/engine.js';
import { renderPlaybookReport } from '../report/playbook.js';
import { renderResult } from '../report/recover.js';
import { writeRunReport } from '../report/write.js';
import { RunStore } from '../recover/runs.js';
import { isDatabaseUrl, resolveBranchTarget } from '../providers/branch-target.js';
import type { ProgressSink, Provider } from '../providers/types.js';
import { formatCompactUtc, parseDuration, parsePointInTime } from '../time/index.js';
import { REFERENCE } from './load.js';
import type { Playbook, PlaybookStep } from './schema.js';
import { createExportBranchStep, refuseInPlaceFromExport, restoreExportStep, type PlaybookExports } from './export-steps.js';
import { redactUrl } from '../redact.js';
import { findStep, refuseUnanswerableFind } from './find-step.js';

export type InputValue = string | number | boolean | string[];

export interface PlaybookRunOptions {
  provider: Provider;
  workDir: string;
  dryRun: boolean;
  yes: boolean;
  timeZone?: string;
  /** Asks the user; undefined when prompts are not allowed (no TTY, --no-input). */
  confirm?: (message: string) => Promise<boolean>;
  onProgress?: ProgressSink;
  onStep?: (step: StepRecord) => void;
  /** Encrypted exports: `at: export:<object>` and the restore-export step. */
  exports?: PlaybookExports;
  signal?: AbortSignal;
}

export interface StepRecord {
  index: number;
  id: string | null;
  type: PlaybookStep['type'];
  status: 'ok' | 'failed' | 'skipped';
  startedAt: string;
  endedAt: string;
  seconds: number;
  outputs: Record<string, unknown>;
  error?: string;
}

export interface PlaybookReport {
  id: string;
  playbook: string;
  inputs: Record<string, InputValue>;
  dryRun: boolean;
  status: 'ok' | 'failed';
  startedAt: string;
  endedAt: string;
  /** From the start of the run to the end of the last step that changed or verified production. */
  rtoSeconds: number | null;
  steps: StepRecord[];
  dir: string;
}

/** Input values from --set (text) and defaults, typed; a missing required input is exit 2. */
export function resolveInputs(playbook: Playbook, given: Record<string, string>, timeZone?: string): Record<string, InputValue> {
  const unknown = Object.keys(given).filter((k) => !(k in playbook.inputs));
  if (unknown.length) throw badInput('unknown_input', `playbook ${playbook.name} has no input ${unknown.join(', ')} (inputs: ${Object.keys(playbook.inputs).join(', ') || 'none'})`);
  const out: Record<string, InputValue> = {};
  for (const [name, spec] of Object.entries(playbook.inputs)) {
    const raw = given[name];
    if (raw === undefined) {
      if (spec.default !== undefined) out[name] = spec.default;
      else if (spec.required) throw badInput('missing_input', `playbook ${playbook.name} needs --set ${name}=<${spec.type}>${spec.description ? ` (${spec.description})` : ''}`);
      continue;
    }
    switch (spec.type) {
      case 'time':
        // export:<object> is checked when the step runs (it needs the key and the store).
        if (!raw.startsWith('export:')) parsePointInTime(raw, { ...(timeZone && { timeZone }) });
        out[name] = raw;
        break;
      case 'number':
        if (!Number.isFinite(Number(raw))) throw badInput('bad_input', `input ${name} must be a number (got "${raw}")`);
        out[name] = Number(raw);
        break;
      case 'boolean':
        if (!/^(true|false|yes|no)$/i.test(raw)) throw badInput('bad_input', `input ${name} must be true or false (got "${raw}")`);
        out[name] = /^(true|yes)$/i.test(raw);
        break;
      case 'identifier':
        out[name] = quoteTableInput(name, raw);
        break;
      case 'list':
        out[name] = raw.split(',').map((v) => v.trim()).filter(Boolean);
        break;
      default:
        out[name] = raw;
    }
  }
  for (const [name, spec] of Object.entries(playbook.inputs)) {
    if (spec.type === 'identifier' && given[name] === undefined && typeof out[name] === 'string') out[name] = quoteTableInput(name, out[name] as string);
  }
  return out;
}

/**
 * An identifier input becomes `"schema"."name"`: in SQL it can only ever name a relation, and
 * table fields of other steps read the quoted form as the same table.
 */
function quoteTableInput(input: string, raw: string): string {
  let t: { schema: string | null; name: string };
  try {
    t = parseTableName(raw);
  } catch {
    throw badInput('bad_input', `input ${input} must be a table name like orders or sales.orders (got "${raw}")`);
  }
  if (t.name === '') throw badInput('bad_input', `input ${input} must be a table name like orders or sales.orders (got "${raw}")`);
  return qualifiedName(t.schema ?? 'public', t.name);
}

/** Identifier inputs a step refers to must name an existing table or view where the step runs. */
async function checkIdentifiersExist(url: string, names: string[]): Promise<void> {
  if (!names.length) return;
  const missing = await withClient(url, async (c) => {
    const { rows } = await c.query<{ name: string }>('select n as name from pg_catalog.unnest($1::text[]) n where pg_catalog.to_regclass(n) is null', [names]);
    return rows.map((r) => r.name);
  });
  if (missing.length) throw badInput('unknown_table', `no table ${missing.join(', ')} in that database`);
}

function identifiersUsed(step: PlaybookStep, playbook: Playbook, inputs: Record<string, InputValue>): string[] {
  const text = JSON.stringify(step.with ?? {});
  return Object.entries(playbook.inputs)
    .filter(([name, spec]) => spec.type === 'identifier' && typeof inputs[name] === 'string' && new RegExp(`\\$\\{\\{\\s*inputs\\.${name}\\s*\\}\\}`).test(text))
    .map(([name]) => inputs[name] as string);
}


/** Thrown by a step whose `if` is false: recorded as skipped, the run goes on. */
class SkipStep extends Error {}

/** Replaces `${{ inputs.x }}` and `${{ steps.id.field }}` in every string of a step's `with`. */
export function interpolate<T>(value: T, inputs: Record<string, InputValue>, steps: Record<string, Record<string, unknown>>): T {
  if (typeof value === 'string') {
    // A value that is exactly one reference to a list stays a list (`tables: ["${{ inputs.tables }}"]`).
    const whole = /^\$\{\{\s*inputs\.([^}\s]+)\s*\}\}$/.exec(value);
    if (whole && Array.isArray(inputs[whole[1]!])) return inputs[whole[1]!] as T;
    return value.replace(REFERENCE, (_m, ref: string) => {
      const [scope, name, field] = ref.split('.');
      const v = scope === 'inputs' ? inputs[name!] : steps[name!]?.[field!];
      if (v === undefined) throw new PitrError('playbook_reference', `\${{ ${ref} }} has no value at this point`);
      return Array.isArray(v) ? v.join(',') : String(v);
    }) as T;
  }
  if (Array.isArray(value)) return value.flatMap((v) => interpolate(v, inputs, steps)) as T;
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, inputs, steps)])) as T;
  return value;
}

async function branchUrlOf(provider: Provider, branch: string | undefined): Promise<string> {
  const target = await resolveBranchTarget(provider, branch || undefined, () => new PitrError('no_branch', 'no recovery branch: add a create-branch step first'));
  return target.url;
}

/**
 * Runs a playbook's steps in order. Every step is timed; the first failure stops the run; the
 * report (JSON + Markdown) is written whatever happens.
 */
export async function runPlaybook(playbook: Playbook, inputs: Record<string, InputValue>, options: PlaybookRunOptions): Promise<PlaybookReport> {
  for (const step of playbook.steps) if (step.type === 'find' && step.if === undefined) refuseUnanswerableFind(() => interpolate(step.with, inputs, {}));
  const started = new Date();
  const id = `${playbook.name}-${formatCompactUtc(started)}-${randomBytes(2).toString('hex')}`;
  const dir = join(options.workDir, 'playbook-runs', id);
  await mkdir(dir, { recursive: true });
  const outputs: Record<string, Record<string, unknown>> = {};
  const records: StepRecord[] = [];
  let lastProductionStepEnd: number | null = null;
  let failed = false;
  // The report as of now; lastProductionStepEnd and the records keep growing until the end.
  const report = (status: PlaybookReport['status']): PlaybookReport => ({
    id,
    playbook: playbook.name,
    // Inputs may hold connection URLs (a restore target): never their passwords in a report.
    inputs: Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, typeof v === 'string' && isDatabaseUrl(v) ? redactUrl(v) : v])),
    dryRun: options.dryRun,
    status,
    startedAt: started.toISOString(),
    endedAt: new Date().toISOString(),
    rtoSeconds: lastProductionStepEnd === null || failed ? null : (lastProductionStepEnd - started.getTime()) / 1000,
    steps: [...records],
    dir,
  });
  for (const [index, rawStep] of playbook.steps.entries()) {
    const stepStarted = Date.now();
    const record: StepRecord = { index, id: rawStep.id ?? null, type: rawStep.type, status: 'ok', startedAt: new Date(stepStarted).toISOString(), endedAt: '', seconds: 0, outputs: {} };
    if (failed) {
      record.status = 'skipped';
    } else {
      try {
        const condition = rawStep.if === undefined ? true : interpolate(rawStep.if as unknown, inputs, outputs);
        const runs = Array.isArray(condition) ? condition.length > 0 : condition === true || !['', 'false', '0'].includes(String(condition).trim().toLowerCase());
        if (!runs) throw new SkipStep();
        const step = { ...rawStep, with: interpolate(rawStep.with, inputs, outputs) } as PlaybookStep;
        const identifiers = identifiersUsed(rawStep, playbook, inputs);
        options.onProgress?.({ phase: 'playbook', message: `step ${index + 1}/${playbook.steps.length}: ${step.name ?? step.id ?? step.type}` });
        // A report step writes the report of the steps so far (the run's own report comes at the end).
        record.outputs = step.type === 'report' ? await writeStepReport(join(dir, rawStep.id ?? `step-${index + 1}`), step.with.title, report('ok')) : await runStep(step, options, identifiers);
        if (['recover', 'restore-in-place', 'restore-export', 'check'].includes(step.type) || (step.type === 'diff' && step.with.failIfMissing)) lastProductionStepEnd = Date.now();
      } catch (err) {
        if (err instanceof SkipStep) {
          record.status = 'skipped';
          record.outputs = { skipped: 'condition is empty or false' };
        } else {
          record.status = 'failed';
          record.error = (err as Error).message;
          failed = true;
        }
      }
    }
    record.endedAt = new Date().toISOString();
    record.seconds = (Date.now() - stepStarted) / 1000;
    if (rawStep.id) outputs[rawStep.id] = record.outputs;
    records.push(record);
    options.onStep?.(record);
  }
  const final = report(failed ? 'failed' : 'ok');
  await writeRunReport(dir, final, renderPlaybookReport(final));
  return final;
}

async function writeStepReport(dir: string, title: string | undefined, report: PlaybookReport): Promise<Record<string, unknown>> {
  await mkdir(dir, { recursive: true });
  await writeRunReport(dir, report, (title ? `# ${title}\n\n` : '') + renderPlaybookReport(report));
  return { title: title ?? null, report: join(dir, 'report.md') };
}

async function runStep(step: PlaybookStep, o: PlaybookRunOptions, identifiers: string[]): Promise<Record<string, unknown>> {
  const provider = o.provider;
  switch (step.type) {
    case 'find':
      return findStep(step.with, provider, o.timeZone, o.onProgress);
    case 'create-branch': {
      // A branch never writes to production, so a dry run makes it too: the later steps then
      // show real previews and a real recovery plan.
      const fromExport = await createExportBranchStep(o.exports, step.with, o.onProgress);
      if (fromExport) return fromExport;
      const at = parsePointInTime(step.with.at, { ...(o.timeZone && { timeZone: o.timeZone }) });
      const b = await provider.createRecoveryBranch(at, {
        ttlMs: parseDuration(step.with.ttl ?? '24h'),
        ...(step.with.name && { name: step.with.name }),
        ...(o.onProgress && { onProgress: o.onProgress }),
      });
      return { id: b.id, name: b.name, target: b.target, secondsToQueryable: b.secondsToQueryable };
    }
    case 'preview': {
      const sessions = await openDiffSessions(await branchUrlOf(provider, step.with.branch), await provider.productionUrl());
      try {
        const p = await preview(sessions, { ...(step.with.tables && { tables: step.with.tables }), schemaOnly: !!step.with.schemaOnly });
        for (const kind of o.dryRun ? [] : (step.with.failIf ?? [])) {
          const bad = p.tables.filter((t) => t[kind] > 0);
          if (bad.length) throw new PitrError('verify_failed', `still ${kind} after the recovery: ${bad.map((t) => `${t.table} (${t[kind]})`).join(', ')}`);
        }
        return {
          schemaIdentical: p.schema.identical,
          tables: p.tables.map((t) => ({ table: t.table, missing: t.missing, changed: t.changed, extra: t.extra })),
          missing: p.tables.reduce((a, t) => a + t.missing, 0),
          changed: p.tables.reduce((a, t) => a + t.changed, 0),
        };
      } finally {
        await sessions.close();
      }
    }
    case 'diff': {
      const sessions = await openDiffSessions(await branchUrlOf(provider, step.with.branch), await provider.productionUrl());
      try {
        const t = resolveTable(sessions, step.with.table);
        const sample: RowDifference[] = [];
        const where = step.with.where && step.with.where.trim() !== '' ? step.with.where : undefined;
        const s = await diffRows({
          branch: sessions.branch,
          production: sessions.production,
          branchTable: t.branch,
          productionTable: t.production,
          ...(where !== undefined && { where }),
          onDifference: (d) => void (sample.length < (step.with.limit ?? 20) && sample.push(d)),
        });
        if (step.with.failIfMissing && !o.dryRun && s.missing > 0) throw new PitrError('verify_failed', `${s.table}: ${s.missing} rows are still missing in production`);
        return { table: s.table, missing: s.missing, changed: s.changed, extra: s.extra, sample };
      }  finally {
        await sessions.close();
      }
    }
    case 'recover': {
      const store = new RunStore(o.workDir);
      const run = await store.create('recover');
      const where = step.with.where && step.with.where.trim() !== '' ? step.with.where : undefined;
      const triggers = step.with.triggers?.trim() || undefined;
      if (triggers !== undefined && triggers !== 'skip' && triggers !== 'fire') throw badInput('bad_triggers', `triggers must be skip or fire, not "${triggers}"`);
      const req = {
        branchUrl: await branchUrlOf(provider, step.with.branch),
        productionUrl: await provider.productionUrl(),
        tables: step.with.tables,
        mode: step.with.mode,
        ...(where !== undefined && { where }),
        cascade: step.with.cascade,
        deleteExtra: step.with.deleteExtra,
        ...(triggers && { triggers: triggers as 'skip' | 'fire' }),
        ...(o.onProgress && { onProgress: o.onProgress }),
      };
      if (o.dryRun) {
        const plan = await planRecovery(req, store, run);
        return { runId: run.id, dryRun: true, insert: plan.totals.insert, update: plan.totals.update, delete: plan.totals.delete };
      }
      const result = await applyRecovery(req, null, store, run);
      await writeRunReport(store.dir(run.id), result, renderResult(result, step.with.branch ?? 'the newest branch'));
      return { runId: run.id, inserted: result.totals.inserted, updated: result.totals.updated, deleted: result.totals.deleted, conflicts: result.totals.conflicts, verified: result.verified };
    }
    case 'restore-in-place': {
      refuseInPlaceFromExport(step.with.at);
      if (!provider.restoreInPlace) throw badInput('restore_unsupported', `in-place restore is not available with the ${provider.kind} provider`);
      const at = parsePointInTime(step.with.at, { ...(o.timeZone && { timeZone: o.timeZone }) });
      const r = await provider.restoreInPlace(at, { ...(step.with.preserveAs && { preserveName: step.with.preserveAs }), dryRun: o.dryRun });
      return { ...r };
    }
    case 'restore-export':
      return restoreExportStep(o.exports, step.with, { dryRun: o.dryRun, ...(o.onProgress && { onProgress: o.onProgress }), ...(o.signal && { signal: o.signal }) });
    case 'check': {
      if (step.with.on === 'database' && !step.with.url) throw badInput('missing_url', 'a check on: database needs url: postgres://…');
      const url = step.with.on === 'database' ? step.with.url! : step.with.on === 'production' ? await provider.productionUrl() : await branchUrlOf(provider, step.with.branch);
      await checkIdentifiersExist(url, identifiers);
      const value = await runUserQuery(url, step.with.sql, { what: 'the check step\'s sql' });
      const got = value === null ? null : String(value);
      const want = step.with.expect === null ? null : String(step.with.expect);
      if (got !== want) throw new PitrError('check_failed', `check on ${step.with.on} failed: expected ${want}, got ${got} (${step.with.sql})`);
      return { value: got };
    }
    case 'confirm': {
      if (o.yes || o.dryRun) return { confirmed: true, by: o.yes ? '--yes' : 'dry run' };
      if (!o.confirm) throw refused('confirmation_required', `${step.with.message} — needs confirmation: pass --yes, or run on a terminal`);
      if (!(await o.confirm(step.with.message))) throw refused('not_confirmed', 'not confirmed: stopped here, nothing further was changed');
      return { confirmed: true, by: 'user' };
    }
    case 'report':
      throw new Error('report steps are written by runPlaybook');
  }
}
