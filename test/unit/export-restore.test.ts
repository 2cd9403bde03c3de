import { describe, expect, it } from 'vitest';
import { exportReference } from '../../src/export/as-branch.js';
import type { ListedExport } from '../../src/export/list.js';
import { exportObjectOf, parseExportRef } from '../../src/export/open.js';
import { planExportPrune } from '../../src/export/prune.js';
import { conninfoDbname } from '../../src/export/restore.js';
import { describeContents, isEmptyTarget } from '../../src/export/target.js';

const listed = (name: string, createdAt: string, authenticated: boolean | null, problem: string | null = null): ListedExport => ({
  name,
  object: `/x/${name}`,
  createdAt,
  source: null,
  database: null,
  target: null,
  bytes: 1,
  pgDump: null,
  server: null,
  tables: null,
  rows: null,
  keyId: null,
  authenticated,
  problem,
  manifest: null,
});

describe('export references', () => {
  it('parses <location>/<name> with or without a suffix, on disk and on S3', () => {
    expect(parseExportRef('/backups/e/pitr-app-1')).toMatchObject({ location: '/backups/e', name: 'pitr-app-1', dumpKey: 'pitr-app-1.dump.enc', manifestKey: 'pitr-app-1.manifest.json' });
    expect(parseExportRef('/backups/e/pitr-app-1.manifest.json').name).toBe('pitr-app-1');
    expect(parseExportRef('s3://bucket/a/b/n.dump.enc')).toMatchObject({ location: 's3://bucket/a/b', name: 'n' });
    expect(exportObjectOf(parseExportRef('s3://bucket/a/n.dump.enc'))).toBe('s3://bucket/a/n');
    expect(() => parseExportRef('/backups/e/')).toThrow(/not an export file/);
  });

  it('export:<object> is recognised; anything else is not an export', () => {
    expect(exportReference('export:/a/b')).toBe('/a/b');
    expect(exportReference('2026-11-25T14:03:00Z')).toBeUndefined();
    expect(exportReference(undefined)).toBeUndefined();
    expect(() => exportReference('export:')).toThrow(/needs an export/);
  });

  it('quotes a database name for pg_restore -d so an = in it is never read as a connection string', () => {
    expect(conninfoDbname('app')).toBe("dbname='app'");
    expect(conninfoDbname("a b=c'd\\e")).toBe("dbname='a b=c\\'d\\\\e'");
  });
});

describe('non-empty targets', () => {
  it('names what is there, capped', () => {
    const empty = { schemas: [], relations: [], functions: [], types: [], extensions: [] };
    expect(isEmptyTarget(empty)).toBe(true);
    const c = { ...empty, relations: ['public.a', 'public.b', 'public.c', 'public.d', 'public.e', 'public.f'], schemas: ['app'] };
    expect(isEmptyTarget(c)).toBe(false);
    expect(describeContents(c)).toBe('6 tables, views or sequences (public.a, public.b, public.c, public.d, public.e, …), 1 schema (app)');
  });
});

describe('export prune plan', () => {
  const none = { daily: 0, weekly: 0, monthly: 0, yearly: 0 };
  it('keeps the newest, keeps what does not authenticate unless forced', () => {
    const list = [listed('new-broken', '2026-12-02T00:00:00Z', false, 'wrong key'), listed('good', '2026-12-01T00:00:00Z', true), listed('old', '2026-11-01T00:00:00Z', true), listed('foreign', '2026-10-01T00:00:00Z', false, 'wrong key')];
    const plan = planExportPrune(list, none, { force: false });
    expect(plan.map((v) => [v.name, v.keep])).toEqual([['new-broken', true], ['good', true], ['old', false], ['foreign', true]]);
    expect(plan[1]!.reasons).toEqual(['newest that authenticates']);
    expect(plan[3]!.reasons[0]).toMatch(/does not authenticate \(wrong key\): kept unless --force/);
    const forced = planExportPrune(list, none, { force: true });
    expect(forced.map((v) => [v.name, v.keep])).toEqual([['new-broken', true], ['good', true], ['old', false], ['foreign', false]]);
  });
});
