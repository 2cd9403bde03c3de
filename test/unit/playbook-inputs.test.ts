import { describe, expect, it } from 'vitest';
import { refusal as rejected } from '../support/refusal.js';
import { parsePlaybook } from '../../src/playbooks/load.js';
import { interpolate, resolveInputs } from '../../src/playbooks/run.js';

const playbook = parsePlaybook(
  `name: fix
inputs:
  at: { type: time, required: true }
  table: { type: identifier, required: true }
  rows: { type: number, default: 10 }
  dry: { type: boolean, default: false }
  tables: { type: list, default: [a, b] }
  note: { type: string }
  fallback: { type: identifier, default: Audit.Log }
steps:
  - type: create-branch
    with: { at: "\${{ inputs.at }}" }
`,
  'fix.yaml',
);

describe('resolveInputs', () => {
  const at = '2026-01-02 03:04:05Z';

  it('types every --set value and fills defaults; optional inputs without a default stay unset', () => {
    expect(resolveInputs(playbook, { at, table: 'orders', rows: '25', dry: 'YES', tables: ' x, y ,,z ' })).toEqual({
      at,
      table: '"public"."orders"',
      rows: 25,
      dry: true,
      tables: ['x', 'y', 'z'],
      fallback: '"audit"."log"',
    });
  });

  it('quotes an identifier so it can only ever name one relation', () => {
    expect(resolveInputs(playbook, { at, table: '"My Schema"."Order; drop table x"' }).table).toBe('"My Schema"."Order; drop table x"');
    expect(resolveInputs(playbook, { at, table: 'sales.Orders' }).table).toBe('"sales"."orders"');
  });

  it('refuses, as usage errors, missing, unknown and mistyped inputs, naming them', () => {
    const missing = rejected(() => resolveInputs(playbook, { table: 'orders' }));
    expect([missing.code, missing.exitCode]).toEqual(['missing_input', 2]);
    expect(missing.message).toContain('--set at=<time>');
    const unknown = rejected(() => resolveInputs(playbook, { at, table: 'orders', tabel: 'x' }));
    expect([unknown.code, unknown.message]).toEqual(['unknown_input', expect.stringContaining('no input tabel')]);
    expect(rejected(() => resolveInputs(playbook, { at, table: 'orders', rows: 'ten' })).message).toContain('rows must be a number');
    expect(rejected(() => resolveInputs(playbook, { at, table: 'orders', dry: 'maybe' })).message).toContain('dry must be true or false');
    expect(rejected(() => resolveInputs(playbook, { at, table: 'a.b.c' })).message).toContain('table must be a table name');
    expect(rejected(() => resolveInputs(playbook, { at, table: '"unterminated' })).code).toBe('bad_input');
    expect(rejected(() => resolveInputs(playbook, { at: 'yesterday-ish', table: 'orders' })).exitCode).toBe(2);
  });

  it('leaves an export:<object> time for its step to check (it needs the key and the store)', () => {
    expect(resolveInputs(playbook, { at: 'export:nightly/2026-01-01', table: 'orders' }).at).toBe('export:nightly/2026-01-01');
  });
});

describe('interpolate', () => {
  const inputs = { at: '2026-01-02', tables: ['a', 'b'], rows: 3, dry: false };
  const steps = { branch: { id: 'br-1', port: 5433 } };

  it('replaces input and step-output references anywhere in nested values, spaces allowed', () => {
    expect(interpolate({ at: 'before ${{inputs.at}}!', nested: { b: '${{ steps.branch.id }}:${{ steps.branch.port }}' }, n: 1, off: null }, inputs, steps)).toEqual({
      at: 'before 2026-01-02!',
      nested: { b: 'br-1:5433' },
      n: 1,
      off: null,
    });
  });

  it('a value that is exactly one list reference stays a list, spliced into an enclosing list', () => {
    expect(interpolate({ tables: ['${{ inputs.tables }}', 'c'] }, inputs, steps)).toEqual({ tables: ['a', 'b', 'c'] });
    expect(interpolate('only ${{ inputs.tables }}', inputs, steps)).toBe('only a,b');
  });

  it('renders numbers and booleans as text inside strings', () => {
    expect(interpolate('${{ inputs.rows }}/${{ inputs.dry }}', inputs, steps)).toBe('3/false');
  });

  it('refuses a reference with no value yet (a later step, a typo), naming it', () => {
    for (const ref of ['steps.later.id', 'steps.branch.nope', 'inputs.missing']) {
      const e = rejected(() => interpolate(`\${{ ${ref} }}`, inputs, steps));
      expect([e.code, e.message]).toEqual(['playbook_reference', `\${{ ${ref} }} has no value at this point`]);
    }
  });

  it('does not expand references inside substituted values (a value cannot inject another reference)', () => {
    expect(interpolate('${{ inputs.note }}', { note: '${{ steps.branch.id }}' }, steps)).toBe('${{ steps.branch.id }}');
  });
});
