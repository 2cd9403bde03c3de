import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parsePlaybook } from '../../src/playbooks/load.js';
import { PitrError } from '../../src/errors.js';

const valid = `name: demo
inputs:
  at: { type: time, required: true }
  table: { type: string, required: true }
steps:
  - id: branch
    type: create-branch
    with: { at: "\${{ inputs.at }}" }
  - id: fix
    type: recover
    with:
      tables: ["\${{ inputs.table }}"]
      branch: "\${{ steps.branch.id }}"
      mode: missing
`;

function error(text: string): PitrError {
  try {
    parsePlaybook(text, 'p.yaml');
  } catch (e) {
    return e as PitrError;
  }
  throw new Error('expected the playbook to be rejected');
}

describe('playbook validation', () => {
  it('accepts a valid playbook and fills defaults', () => {
    const p = parsePlaybook(valid, 'p.yaml');
    expect(p.steps[1]).toMatchObject({ type: 'recover', with: { mode: 'missing', cascade: false, deleteExtra: false } });
  });

  it('the shipped playbooks are valid', () => {
    for (const name of ['accidental-deletion', 'data-corruption', 'restore-drill', 'failed-migration']) {
      const p = parsePlaybook(readFileSync(`playbooks/${name}.yaml`, 'utf8'), `${name}.yaml`);
      expect(p.name).toBe(name);
    }
  });

  it.each([
    ['YAML syntax', valid.replace('with: { at:', 'with: { at: [unclosed'), /^invalid playbook p\.yaml:\d+:\d+: /],
    ['unknown step type', valid.replace('type: recover', 'type: restore-everything'), /p\.yaml:10:11 steps\[1\]\.type: Invalid discriminator value\. Expected 'create-branch'/],
    ['missing required field', valid.replace(/      tables: .*\n/, ''), /p\.yaml:12:7 steps\[1\]\.with\.tables: /],
    ['bad enum value', valid.replace('mode: missing', 'mode: deleted'), /p\.yaml:14:13 steps\[1\]\.with\.mode: .*"missing"/],
    ['misspelt key', valid.replace('mode: missing', 'casade: true'), /p\.yaml:12:7 steps\[1\]\.with: Unrecognized key: "casade"/],
    ['wrong value type', valid.replace('mode: missing', 'cascade: "yes"'), /p\.yaml:14:16 steps\[1\]\.with\.cascade: .*boolean/],
    ['duplicate step id', valid.replace('id: fix', 'id: branch'), /p\.yaml:9:9 steps\[1\]\.id: "branch" is used by an earlier step/],
    ['unknown input', valid.replace('inputs.table', 'inputs.tabel'), /p\.yaml:12:16 steps\[1\]\.with\.tables\[0\]: \$\{\{ inputs\.tabel \}\}: no input named "tabel"/],
    ['reference to a later step', valid.replace('"${{ inputs.at }}"', '"${{ steps.fix.id }}"'), /steps\[0\]\.with\.at: .*no earlier step with id "fix"/],
    ['no steps', 'name: empty\nsteps: []\n', /p\.yaml:2:8 steps: a playbook needs at least one step/],
    ['bad input type', valid.replace('type: time', 'type: timestamp'), /p\.yaml:3:\d+ inputs\.at\.type: /],
    ['bad name', valid.replace('name: demo', 'name: "my playbook!"'), /p\.yaml:1:7 name: must start with a letter/],
  ])('%s: one line with file, line and YAML path', (_kind, text, message) => {
    const err = error(text);
    expect(err).toBeInstanceOf(PitrError);
    expect(err.exitCode).toBe(2);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('\n');
  });
});

describe('playbook validation reports every mistake at once', () => {
  const broken = `name: "bad name"
inputs:
  at: { type: timestamp }
steps:
  - id: branch
    type: create-branch
    with: { at: "\${{ inputs.when }}" }
  - id: branch
    type: recover
    with:
      tables: [comics]
      mode: deleted
      casade: true
`;

  it('lists each as file:line:col path: message, sorted by position', () => {
    const err = error(broken) as PitrError & { problems: string[] };
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe('invalid playbook p.yaml: 6 mistakes');
    expect(err.problems).toEqual([
      'p.yaml:1:7 name: must start with a letter and hold only letters, digits, - and _',
      expect.stringMatching(/^p\.yaml:3:\d+ inputs\.at\.type: /),
      'p.yaml:7:17 steps[0].with.at: ${{ inputs.when }}: no input named "when"',
      'p.yaml:8:9 steps[1].id: "branch" is used by an earlier step',
      expect.stringMatching(/^p\.yaml:11:7 steps\[1\]\.with: Unrecognized key: "casade"/),
      expect.stringMatching(/^p\.yaml:12:13 steps\[1\]\.with\.mode: .*"missing"/),
    ]);
  });
});
