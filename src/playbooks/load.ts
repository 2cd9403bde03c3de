import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { badInput } from '../errors.js';
import { PlaybookSchema, type Playbook } from './schema.js';

/** `steps[2].with.mode`: the YAML path as people read it. */
export function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '') || '(top level)';
}

const REFERENCE = /\$\{\{\s*([^}]*?)\s*\}\}/g;

/**
 * Parses and validates a playbook. Every mistake is reported as one line naming the file, the
 * line and column, and the YAML path: `file:12:9 steps[2].with.mode: …`.
 */
export function parsePlaybook(text: string, file: string): Playbook {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true });
  const where = (path: readonly PropertyKey[]) => {
    // The deepest node that exists on the path: a missing key is reported at its parent.
    for (let depth = path.length; depth >= 0; depth--) {
      const node = doc.getIn(path.slice(0, depth) as unknown[], true) as Node | undefined;
      if (node && (isMap(node) || isSeq(node) || isScalar(node)) && node.range) {
        const pos = lines.linePos(node.range[0]);
        return `${file}:${pos.line}:${pos.col}`;
      }
    }
    return file;
  };
  if (doc.errors.length) {
    const err = doc.errors[0]!;
    const pos = err.linePos?.[0];
    throw badInput('bad_playbook', `invalid playbook ${file}${pos ? `:${pos.line}:${pos.col}` : ''}: ${err.message.split('\n')[0]}`);
  }
  const parsed = PlaybookSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw badInput('bad_playbook', `invalid playbook ${where(issue.path)} ${formatPath(issue.path)}: ${issue.message}`);
  }
  const playbook = parsed.data;
  // References must name an input, or a step that runs earlier and has an id.
  const seen = new Set<string>();
  for (const [i, step] of playbook.steps.entries()) {
    if (step.id && seen.has(step.id)) throw badInput('bad_playbook', `invalid playbook ${where(['steps', i, 'id'])} steps[${i}].id: "${step.id}" is used by an earlier step`);
    const walk = (value: unknown, path: PropertyKey[]) => {
      if (typeof value === 'string') {
        for (const match of value.matchAll(REFERENCE)) {
          const ref = match[1]!;
          const [scope, name, field] = ref.split('.');
          const ok =
            (scope === 'inputs' && name !== undefined && field === undefined && name in playbook.inputs) ||
            (scope === 'steps' && name !== undefined && field !== undefined && seen.has(name));
          if (!ok) {
            const why =
              scope === 'inputs' ? `no input named "${name}"` : scope === 'steps' ? `no earlier step with id "${name}" (or no field given)` : 'refer to inputs.<name> or steps.<id>.<field>';
            throw badInput('bad_playbook', `invalid playbook ${where(path)} ${formatPath(path)}: \${{ ${ref} }}: ${why}`);
          }
        }
      } else if (Array.isArray(value)) value.forEach((v, j) => walk(v, [...path, j]));
      else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(v, [...path, k]);
    };
    walk(step.with, ['steps', i, 'with']);
    if (step.if !== undefined) walk(step.if, ['steps', i, 'if']);
    if (step.id) seen.add(step.id);
  }
  return playbook;
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
