import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { signManifest } from '../../src/export/manifest.js';
import { listExports } from '../../src/export/list.js';
import { openExportOf } from '../../src/export/open.js';
import { createExportBranchStep, refuseInPlaceFromExport, restoreExportStep, type PlaybookExports } from '../../src/playbooks/export-steps.js';
import { withExportBranches, type ExportBranches } from '../../src/export/as-branch.js';
import type { Provider } from '../../src/providers/types.js';
import { refusal } from '../support/refusal.js';
import { unsigned } from '../support/manifests.js';

const key = randomBytes(32);
const root = mkdtempSync(join(tmpdir(), 'pitr-export-steps-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A directory of exports as `pitr export` leaves them (dumps are placeholders: a dry run never reads them). */
function exportsDir(name: string, exports: { name: string; createdAt: string; master?: Buffer; dump?: boolean }[]): string {
  const dir = join(root, name);
  mkdirSync(dir);
  for (const e of exports) {
    const master = e.master ?? key;
    writeFileSync(join(dir, `${e.name}.manifest.json`), signManifest(unsigned(e.name, { createdAt: e.createdAt }, master), master).text);
    if (e.dump !== false) writeFileSync(join(dir, `${e.name}.dump.enc`), 'placeholder');
  }
  return dir;
}

const created: { object: string; options: Record<string, unknown> }[] = [];
const branches = {
  create: (object: string, options: Record<string, unknown>) => {
    created.push({ object, options });
    return Promise.resolve({ id: 'b1', name: options.name ?? 'pitr-b1', target: `export:${object}`, details: { exportName: 'e1' }, secondsToQueryable: 2 });
  },
} as unknown as ExportBranches;
const exportsWith = (): PlaybookExports => ({ branches, masterKey: () => key });

describe('playbook create-branch at export:', () => {
  it('leaves times and snapshots to the provider', async () => {
    await expect(createExportBranchStep(undefined, { at: '2026-11-25T14:00:00Z' }, undefined)).resolves.toBeUndefined();
  });

  it('creates the branch from the export with the ttl and name given', async () => {
    const onProgress = () => undefined;
    const r = await createExportBranchStep(exportsWith(), { at: 'export:/x/e1', ttl: '2h', name: 'n1' }, onProgress);
    expect(r).toEqual({ id: 'b1', name: 'n1', target: 'export:/x/e1', export: 'e1', secondsToQueryable: 2 });
    expect(created.at(-1)).toEqual({ object: '/x/e1', options: { ttlMs: 2 * 3600_000, name: 'n1', onProgress } });
    await createExportBranchStep(exportsWith(), { at: 'export:/x/e1' }, undefined);
    expect(created.at(-1)!.options).toEqual({ ttlMs: 24 * 3600_000 });
  });

  it('refuses when the run has no exports, and an empty export: reference', async () => {
    await expect(createExportBranchStep(undefined, { at: 'export:/x/e1' }, undefined)).rejects.toMatchObject({ code: 'exports_unavailable', exitClass: 'usage' });
    await expect(createExportBranchStep(exportsWith(), { at: 'export:  ' }, undefined)).rejects.toMatchObject({ code: 'bad_export_reference' });
  });
});

describe('playbook restore in place from an export', () => {
  it('is refused for export: targets only', () => {
    expect(() => refuseInPlaceFromExport('2026-11-25T14:00:00Z')).not.toThrow();
    const err = refusal(() => refuseInPlaceFromExport('export:/x/e1'));
    expect(err.code).toBe('restore_from_export');
    expect(err.exitClass).toBe('refused');
  });
});

describe('playbook restore-export (dry run: chooses, reads no dump)', () => {
  it('chooses the newest export that authenticates and lists the newer ones it skipped', async () => {
    const dir = exportsDir('mixed', [
      { name: 'old', createdAt: '2026-11-20T00:00:00.000Z' },
      { name: 'good', createdAt: '2026-11-24T00:00:00.000Z' },
      { name: 'foreign', createdAt: '2026-11-25T00:00:00.000Z', master: randomBytes(32) },
      { name: 'nodump', createdAt: '2026-11-26T00:00:00.000Z', dump: false },
    ]);
    const r = await restoreExportStep(exportsWith(), { from: dir, into: 'postgres://u:secret@127.0.0.1/empty' }, { dryRun: true });
    expect(r.export).toBe('good');
    expect(r.object).toBe(join(dir, 'good'));
    expect(r.state).toBe('2026-11-24T00:00:00.000Z');
    expect(r.dryRun).toBe(true);
    expect(r.into).not.toContain('secret');
    expect(r.skippedNewer).toEqual([expect.stringMatching(/^nodump: the dump nodump.dump.enc is missing/), expect.stringMatching(/^foreign: wrong encryption key/)]);
  });

  it('takes a named export, and refuses a named one that does not authenticate or does not exist', async () => {
    const dir = exportsDir('named', [
      { name: 'a', createdAt: '2026-11-20T00:00:00.000Z' },
      { name: 'b', createdAt: '2026-11-24T00:00:00.000Z', master: randomBytes(32) },
    ]);
    const r = await restoreExportStep(exportsWith(), { from: dir, export: ' a ', into: 'postgres://127.0.0.1/x' }, { dryRun: true });
    expect(r).toMatchObject({ export: 'a', skippedNewer: [] });
    await expect(restoreExportStep(exportsWith(), { from: dir, export: 'b', into: 'postgres://127.0.0.1/x' }, { dryRun: true })).rejects.toMatchObject({
      code: 'export_unusable',
      message: expect.stringMatching(/wrong encryption key/),
    });
    await expect(restoreExportStep(exportsWith(), { from: dir, export: 'zz', into: 'postgres://127.0.0.1/x' }, { dryRun: true })).rejects.toMatchObject({
      code: 'no_usable_export',
      message: `no export zz in ${dir}`,
    });
  });

  it('refuses when nothing authenticates, and when the run has no exports', async () => {
    const dir = exportsDir('none', [{ name: 'x', createdAt: '2026-11-20T00:00:00.000Z', master: randomBytes(32) }]);
    await expect(restoreExportStep(exportsWith(), { from: dir, into: 'postgres://127.0.0.1/x' }, { dryRun: true })).rejects.toMatchObject({
      code: 'no_usable_export',
      message: `no export in ${dir} authenticates with this key (1 found)`,
    });
    await expect(restoreExportStep(undefined, { from: dir, into: 'postgres://127.0.0.1/x' }, { dryRun: true })).rejects.toMatchObject({ code: 'exports_unavailable' });
  });
});

describe('export list and open over a directory', () => {
  it('listExports reports the location and its exports', async () => {
    const dir = exportsDir('listed', [{ name: 'e1', createdAt: '2026-11-20T00:00:00.000Z' }]);
    const r = await listExports(dir, key);
    expect(r.location).toBe(dir);
    expect(r.exports.map((e) => [e.name, e.authenticated])).toEqual([['e1', true]]);
  });

  it('openExportOf parses the reference and opens its store', () => {
    const { ref, store } = openExportOf(join(root, 'listed', 'e1.dump.enc'));
    expect(ref.name).toBe('e1');
    expect(store).toMatchObject({ kind: 'dir', location: join(root, 'listed') });
    store.close();
  });
});

describe('a provider with export branches merged in', () => {
  const own = { id: 'n1', name: 'pitr-own', createdAt: '2026-11-25T10:00:00Z', connectionUrl: 'postgres://own' };
  const exported = { id: 'x1', name: 'pitr-export-1', createdAt: '2026-11-24T10:00:00Z', connectionUrl: 'postgres://export' };
  const calls: string[] = [];
  const inner = {
    kind: 'local',
    listRecoveryBranches: () => Promise.resolve([own]),
    getRecoveryBranch: (id: string) => (calls.push(`inner get ${id}`), Promise.resolve(own)),
    deleteRecoveryBranch: (id: string) => (calls.push(`inner delete ${id}`), Promise.resolve(own)),
    connectionString: (id: string) => (calls.push(`inner url ${id}`), Promise.resolve(own.connectionUrl)),
    describe(this: { kind: string }) {
      return this.kind;
    },
  };
  const mine = (id: string) => (id === 'x1' || id === 'pitr-export-1' ? exported : undefined);
  const fakeBranches = {
    list: () => Promise.resolve([exported]),
    find: (id: string) => Promise.resolve(mine(id)),
    delete: (id: string) => Promise.resolve(mine(id)),
  } as unknown as ExportBranches;
  const merged = withExportBranches(inner as unknown as Provider, fakeBranches) as unknown as typeof inner;

  it('lists both, oldest first', async () => {
    expect((await merged.listRecoveryBranches()).map((b) => b.id)).toEqual(['x1', 'n1']);
  });

  it('export branches answer first by id or name; the rest goes to the provider', async () => {
    calls.length = 0;
    await expect(merged.getRecoveryBranch('pitr-export-1')).resolves.toBe(exported);
    await expect(merged.deleteRecoveryBranch('x1')).resolves.toBe(exported);
    await expect(merged.connectionString('x1')).resolves.toBe('postgres://export');
    expect(calls).toEqual([]);
    await expect(merged.getRecoveryBranch('n1')).resolves.toBe(own);
    await expect(merged.deleteRecoveryBranch('n1')).resolves.toBe(own);
    await expect(merged.connectionString('n1')).resolves.toBe('postgres://own');
    expect(calls).toEqual(['inner get n1', 'inner delete n1', 'inner url n1']);
  });

  it("everything else is the provider's own, bound to it", () => {
    expect(merged.kind).toBe('local');
    const describeIt = merged.describe as unknown as () => string;
    expect(describeIt()).toBe('local');
  });
});
