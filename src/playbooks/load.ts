import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { badInput, PitrError } from '../errors.js';
import { PlaybookSchema, type Playbook } from './schema.js';

/** `steps[2].with.mode`: the YAML path as people read it. */
export function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '') || '(top level)';
}

/** A `${{ inputs.x }}` / `${{ steps.id.field }}` reference in a playbook value. */
export const REFERENCE = /\$\{\{\s*([^}]*?)\s*\}\}/g;

/** Every mistake in a playbook, each `file:line:col path: message`, sorted by position (exit 2). */
export class InvalidPlaybookError extends PitrError {
  constructor(
    file: string,
    readonly problems: readonly string[],
  ) {
    super('bad_playbook', problems.length === 1 ? `invalid playbook ${problems[0]}` : `invalid playbook ${file}: ${problems.length} mistakes`, {
      exit: 'usage',
      detail: problems.join('\n'),
    });
  }
}

interface Problem {
  line: number;
  col: number;
  text: string;
}

/**
 * Parses and validates a playbook. Every mistake is reported, not just the first, as one line
 * naming the file, the line and column, and the YAML path: `file:12:9 steps[2].with.mode: …`.
 */
export function parsePlaybook(text: string, file: string): Playbook {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true });
  const problems: Problem[] = [];
  const report = (path: readonly PropertyKey[], message: string) => {
    // The deepest node that exists on the path: a missing key is reported at its parent.
    for (let depth = path.length; depth >= 0; depth--) {
      const node = doc.getIn(path.slice(0, depth) as unknown[], true) as Node | undefined;
      if (node && (isMap(node) || isSeq(node) || isScalar(node)) && node.range) {
        const pos = lines.linePos(node.range[0]);
        problems.push({ ...pos, text: `${file}:${pos.line}:${pos.col} ${formatPath(path)}: ${message}` });
        return;
      }
    }
    problems.push({ line: 0, col: 0, text: `${file} ${formatPath(path)}: ${message}` });
  };
  const fail = (): never => {
    problems.sort((a, b) => a.line - b.line || a.col - b.col);
    throw new InvalidPlaybookError(file, [...new Set(problems.map((p) => p.text))]);
  };
  if (doc.errors.length) {
    // After a syntax error the parser's further errors are mostly its consequences: the first one is the mistake.
    for (const err of doc.errors.slice(0, 1)) {
      const pos = err.linePos?.[0];
      problems.push({ line: pos?.line ?? 0, col: pos?.col ?? 0, text: `${file}${pos ? `:${pos.line}:${pos.col}` : ''}: ${err.message.split('\n')[0]}` });
    }
    fail();
  }
  const raw = doc.toJS() as unknown;
  const parsed = PlaybookSchema.safeParse(raw);
  if (!parsed.success) for (const issue of parsed.error.issues) report(issue.path, issue.message);
  checkReferences(raw, report);
  if (problems.length || !parsed.success) fail();
  return parsed.data!;
}

/**
 * References must name an input, or a step that runs earlier and has an id; step ids are unique.
 * Works on the raw document so these mistakes are reported along with the schema's.
 */
function checkReferences(raw: unknown, report: (path: readonly PropertyKey[], message: string) => void): void {
  const doc = (raw ?? {}) as { inputs?: unknown; steps?: unknown };
  const inputs = doc.inputs && typeof doc.inputs === 'object' ? Object.keys(doc.inputs) : [];
  const steps = Array.isArray(doc.steps) ? (doc.steps as unknown[]) : [];
  const seen = new Set<string>();
  for (const [i, raw] of steps.entries()) {
    const step = (raw ?? {}) as { id?: unknown; with?: unknown; if?: unknown };
    const id = typeof step.id === 'string' ? step.id : undefined;
    if (id && seen.has(id)) report(['steps', i, 'id'], `"${id}" is used by an earlier step`);
    const walk = (value: unknown, path: PropertyKey[]) => {
      if (typeof value === 'string') {
        for (const match of value.matchAll(REFERENCE)) {
          const ref = match[1]!;
          const [scope, name, field] = ref.split('.');
          const ok =
            (scope === 'inputs' && name !== undefined && field === undefined && inputs.includes(name)) ||
            (scope === 'steps' && name !== undefined && field !== undefined && seen.has(name));
          if (!ok) {
            const why =
              scope === 'inputs' ? `no input named "${name}"` : scope === 'steps' ? `no earlier step with id "${name}" (or no field given)` : 'refer to inputs.<name> or steps.<id>.<field>';
            report(path, `\${{ ${ref} }}: ${why}`);
          }
        }
      } else if (Array.isArray(value)) value.forEach((v, j) => walk(v, [...path, j]));
      else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(v, [...path, k]);
    };
    walk(step.with, ['steps', i, 'with']);
    if (step.if !== undefined) walk(step.if, ['steps', i, 'if']);
    if (id) seen.add(id);
  }
}

export async function loadPlaybook(file: string): Promise<Playbook> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw badInput('bad_playbook', `cannot read playbook ${file}`);
  }
  return parsePlaybook(text, file);
}

/** Playbooks shipped with pitr live in the package's playbooks/ folder (next to dist/). */
export const SHIPPED_PLAYBOOKS = fileURLToPath(new URL('../../playbooks/', import.meta.url));
