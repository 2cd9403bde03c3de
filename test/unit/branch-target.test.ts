import { describe, expect, it } from 'vitest';
import { PitrError } from '../../src/errors.js';
import { describeBranch, isDatabaseUrl, newestBranch, resolveBranchTarget } from '../../src/providers/branch-target.js';
import type { RecoveryBranch } from '../../src/providers/types.js';

const branch = (id: string, name: string, createdAt: string, details?: Record<string, unknown>): RecoveryBranch => ({
  id,
  name,
  provider: 'local',
  source: 'prod',
  target: '2026-11-25T14:03:00Z',
  connectionUrl: `postgres://u:pw@127.0.0.1:1/${id}`,
  createdAt,
  expiresAt: null,
  secondsToQueryable: null,
  state: 'running',
  ...(details && { details }),
});

function provider(branches: RecoveryBranch[]) {
  const asked: string[] = [];
  return {
    asked,
    listRecoveryBranches: async () => [...branches],
    getRecoveryBranch: async (ref: string) => {
      asked.push(ref);
      const b = branches.find((x) => x.id === ref || x.name === ref);
      if (!b) throw new PitrError('branch_not_found', `no branch ${ref}`);
      return b;
    },
    connectionString: async (id: string) => `postgres://conn/${id}`,
  };
}

const none = () => new PitrError('no_branch', 'none');

describe('resolveBranchTarget', () => {
  const older = branch('br-1', 'first', '2026-11-25T10:00:00Z');
  const newer = branch('br-2', 'second', '2026-11-25T11:00:00Z');
  const exported = branch('ex-1', 'ex', '2026-11-25T09:00:00Z', { purpose: 'export', exportName: 'pitr-app-1' });

  it('takes a postgres:// URL in any case as the database itself, without asking the provider', async () => {
    const p = provider([older]);
    for (const url of ['postgres://a@h/db', 'postgresql://a@h/db', 'POSTGRESQL://a@h/db']) {
      expect(await resolveBranchTarget(p, url, none)).toEqual({ url, label: 'the given database' });
    }
    expect(p.asked).toEqual([]);
  });

  it('an id or a name is that branch, connected by its id', async () => {
    const p = provider([older, newer]);
    const byName = await resolveBranchTarget(p, 'first', none);
    expect(byName).toEqual({ url: 'postgres://conn/br-1', label: 'first (at 2026-11-25T14:03:00Z)', branch: older });
    expect((await resolveBranchTarget(p, 'br-2', none)).branch).toBe(newer);
  });

  it('nothing means the newest branch; none at all is the caller’s error', async () => {
    expect((await resolveBranchTarget(provider([newer, older]), undefined, none)).branch).toBe(newer);
    expect(await newestBranch(provider([]))).toBeUndefined();
    await expect(resolveBranchTarget(provider([]), undefined, none)).rejects.toMatchObject({ code: 'no_branch' });
  });

  it('an unknown name is the provider’s error, not the newest branch', async () => {
    await expect(resolveBranchTarget(provider([older]), 'nope', none)).rejects.toMatchObject({ code: 'branch_not_found' });
  });

  it('labels an export branch by its export', () => {
    expect(describeBranch(exported)).toBe('production as it was at 2026-11-25T14:03:00Z (from export pitr-app-1)');
    expect(isDatabaseUrl('export:/x')).toBe(false);
  });
});
