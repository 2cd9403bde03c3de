import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { PitrError } from '../../src/errors.js';
import { findQuestion, refuseUnanswerableFind, type FindStepInput } from '../../src/playbooks/find-step.js';
import { loadPlaybook, SHIPPED_PLAYBOOKS } from '../../src/playbooks/load.js';
import { interpolate, resolveInputs } from '../../src/playbooks/run.js';

/** The shipped playbooks' find step: which question their inputs ask, without a database. */
async function findWith(name: string, given: Record<string, string>): Promise<FindStepInput> {
  const playbook = await loadPlaybook(join(SHIPPED_PLAYBOOKS, `${name}.yaml`));
  const step = playbook.steps[0]!;
  expect(step.type).toBe('find');
  expect(playbook.steps[1]).toMatchObject({ type: 'create-branch', with: { at: '${{ steps.find.at }}' } });
  return interpolate(step.with as FindStepInput, resolveInputs(playbook, given), {});
}

describe('the find step of the shipped playbooks', () => {
  it('passes a given instant on: nothing to search', async () => {
    expect(findQuestion(await findWith('accidental-deletion', { at: '-20m', table: 'items' }))).toBeNull();
    expect(findQuestion(await findWith('data-corruption', { at: 'xid:900', tables: 'items' }))).toBeNull();
  });

  it('accidental-deletion: find_count asks when the count of the rows matching where dropped; find_sql any query', async () => {
    const count = findQuestion(await findWith('accidental-deletion', { table: 'items', find_count: 'items', where: "note = 'initial'" }));
    expect(count).toMatchObject({ question: 'dropped', tables: ['items'], label: "count(*) of items where note = 'initial'" });
    const sql = findQuestion(await findWith('accidental-deletion', { table: 'items', find_sql: 'select count(*) from public.items' }));
    expect(sql?.question).toBe('changed');
  });

  it('data-corruption: find_row asks when the row started to look as it does now', async () => {
    const row = findQuestion(await findWith('data-corruption', { tables: 'items', find_row: 'items,3,1' }));
    expect(row).toMatchObject({ question: 'reached', tables: ['items'] });
  });

  it('neither an instant nor a question: a missing input (exit 2) before any step runs', async () => {
    const w = await findWith('accidental-deletion', { table: 'items' });
    const err = (() => {
      try {
        refuseUnanswerableFind(() => w);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(PitrError);
    expect((err as PitrError).message).toContain('needs --set at=<time>');
    expect((err as PitrError).exitClass).toBe('usage');
    // A step that refers to an earlier step's output is checked when it runs.
    expect(() => refuseUnanswerableFind(() => interpolate({ given: '${{ steps.x.at }}' }, {}, {}))).not.toThrow();
  });
});
