import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdir, rm } from 'node:fs/promises';
import { makeTempRoot, startCluster, switchAndArchiveWal, type TestCluster, localEnv } from '../support/cluster.js';
import { runPitr } from '../support/cli.js';

/**
 * Restore points, retention and the migration guard on the local provider, through the built
 * CLI against a real production cluster with a WAL archive.
 */
describe('local snapshots, prune and migrate', () => {
  let prod: TestCluster;
  let work: string;
  let env: Record<string, string>;
  const rows = async (url: string) => {
    const { default: pg } = await import('pg');
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return Number((await c.query('select count(*) as n from events')).rows[0].n);
    } finally {
      await c.end();
    }
  };
  const tick = () => new Promise((r) => setTimeout(r, 30));

  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-snapshots-');
    env = localEnv(prod, work);
    await prod.query(`create table events(id serial primary key, body text); insert into events (body) select 'e' || g from generate_series(1, 100) g`);
  });

  afterAll(async () => {
    const list = await runPitr(['branches', '--json'], env);
    for (const b of list.json?.branches ?? []) await runPitr(['branches', 'delete', b.id], env);
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('a restore point taken now is what --at snapshot:<name> branches to, even after later writes', async () => {
    const made = await runPitr(['snapshot', 'create', '--name', 'before-import', '--json'], env);
    expect(made.code, made.stderr).toBe(0);
    // No base backup existed: the snapshot took one first.
    expect(made.json.snapshot).toMatchObject({ name: 'before-import', method: 'restore-point', provider: 'local' });
    expect(made.json.snapshot.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    await prod.query(`insert into events (body) select 'later' from generate_series(1, 50)`);
    const branch = await runPitr(['--at', 'snapshot:before-import', '--json', '--show-password'], env);
    expect(branch.code, branch.stderr).toBe(0);
    expect(await rows(branch.json.connectionUrl)).toBe(100);
    expect(await rows(prod.url)).toBe(150);
    await runPitr(['branches', 'delete', branch.json.id], env);
  });

  it('bookmarks a past time, lists, refuses bad names and unknown snapshots in one line, deletes', async () => {
    const past = (await prod.query<{ t: string }>(`select now()::text as t`))[0]!.t;
    await tick();
    await prod.query(`insert into events (body) values ('after the bookmark')`);
    await switchAndArchiveWal(prod);
    const made = await runPitr(['snapshot', 'create', '--name', 'bookmark-1', '--at', past, '--json'], env);
    expect(made.code, made.stderr).toBe(0);
    expect(made.json.snapshot).toMatchObject({ method: 'bookmark', lsn: null });
    const list = await runPitr(['snapshot', 'list', '--json'], env);
    expect(list.json.snapshots.map((s: { name: string }) => s.name)).toEqual(['before-import', 'bookmark-1']);
    const branch = await runPitr(['--at', 'snapshot:bookmark-1', '--json', '--show-password'], env);
    expect(branch.code, branch.stderr).toBe(0);
    expect(await rows(branch.json.connectionUrl)).toBe(150);
    await runPitr(['branches', 'delete', branch.json.id], env);

    for (const [args, pattern] of [
      [['snapshot', 'create', '--name', 'bookmark-1'], /already exists/],
      [['snapshot', 'create', '--name', 'no spaces/here'], /not a valid snapshot name/],
      [['--at', 'snapshot:nope'], /no snapshot "nope".*known: before-import, bookmark-1/],
      [['--at', 'snapshot:'], /not a valid snapshot reference/],
      [['snapshot', 'delete', 'nope'], /no snapshot "nope"/],
      [['snapshot', 'create', '--at', '2001-01-01T00:00:00Z'], /before the oldest base backup/],
    ] as const) {
      const r = await runPitr([...args], env);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      // One error line (a "target:" note may precede it: the time as read).
      expect(r.stderr.trim().split('\n').filter((l) => !l.startsWith('target:'))).toHaveLength(1);
      expect(r.stderr).toMatch(pattern);
    }
    const deleted = await runPitr(['snapshot', 'delete', 'bookmark-1', '--json'], env);
    expect(deleted.code).toBe(0);
    expect((await runPitr(['snapshot', 'list', '--json'], env)).json.snapshots).toHaveLength(1);
  });

  it('backup prune keeps what the policy and the snapshots need, removes older WAL, and kept backups still restore', async () => {
    // Three more backups, WAL in between; a bookmark that needs the first of them.
    for (let i = 0; i < 3; i++) {
      expect((await runPitr(['backup'], env)).code).toBe(0);
      await prod.query(`insert into events (body) values ('between backups ${i}')`);
      if (i === 0) {
        await tick();
        const t = (await prod.query<{ t: string }>(`select now()::text as t`))[0]!.t;
        await tick();
        await switchAndArchiveWal(prod);
        expect((await runPitr(['snapshot', 'create', '--name', 'needs-second', '--at', t], env)).code).toBe(0);
      }
      await switchAndArchiveWal(prod);
    }
    const backups = (await runPitr(['backup', 'list', '--json'], env)).json.backups as { id: string; startWal: string }[];
    expect(backups).toHaveLength(4);
    await runPitr(['snapshot', 'delete', 'before-import'], env);
    const keepOne = ['--keep-daily', '1', '--keep-weekly', '0', '--keep-monthly', '0', '--keep-yearly', '0'];
    const dry = await runPitr(['backup', 'prune', ...keepOne, '--dry-run', '--json'], env);
    expect(dry.code, dry.stderr).toBe(0);
    const verdicts = Object.fromEntries(dry.json.backups.map((b: { id: string; keep: boolean; reasons: string[] }) => [b.id, b]));
    expect(verdicts[backups[0]!.id]).toMatchObject({ keep: false });
    expect(verdicts[backups[1]!.id]).toMatchObject({ keep: true, reasons: ['snapshot needs-second'] });
    expect(verdicts[backups[2]!.id]).toMatchObject({ keep: false });
    expect(verdicts[backups[3]!.id].keep).toBe(true);
    expect((await runPitr(['backup', 'list', '--json'], env)).json.backups).toHaveLength(4);

    const archiveBefore = await readdir(prod.archiveDir);
    const real = await runPitr(['backup', 'prune', ...keepOne, '--json'], env);
    expect(real.code, real.stderr).toBe(0);
    expect((await runPitr(['backup', 'list', '--json'], env)).json.backups.map((b: { id: string }) => b.id)).toEqual([backups[1]!.id, backups[3]!.id]);
    // WAL before the oldest kept backup is gone; everything from it on is still there.
    expect(real.json.wal.keepFrom).toBe(backups[1]!.startWal);
    const archiveAfter = await readdir(prod.archiveDir);
    const segments = (files: string[]) => files.filter((f) => /^[0-9A-F]{24}$/.test(f));
    expect(segments(archiveAfter).every((f) => f.slice(8) >= backups[1]!.startWal.slice(8))).toBe(true);
    expect(segments(archiveAfter).length).toBeLessThan(segments(archiveBefore).length);
    expect(archiveAfter.filter((f) => f.endsWith('.history')).sort()).toEqual(archiveBefore.filter((f) => f.endsWith('.history')).sort());
    expect((await runPitr(['status'], env)).code).toBe(0);
    // The snapshot that kept the older backup still restores, and so does the newest point.
    const fromSnapshot = await runPitr(['--at', 'snapshot:needs-second', '--json', '--show-password'], env);
    expect(fromSnapshot.code, fromSnapshot.stderr).toBe(0);
    await runPitr(['branches', 'delete', fromSnapshot.json.id], env);
    const latest = await runPitr(['--at', 'now', '--json', '--show-password'], env);
    expect(latest.code, latest.stderr).toBe(0);
    expect(await rows(latest.json.connectionUrl)).toBe(await rows(prod.url));
    await runPitr(['branches', 'delete', latest.json.id], env);
    // Idempotent: a second prune has nothing left to do.
    const again = await runPitr(['backup', 'prune', ...keepOne, '--json'], env);
    expect(again.json.backups.every((b: { keep: boolean }) => b.keep)).toBe(true);
    expect(again.json.wal.remove).toEqual([]);
  });

  it('snapshot prune applies the policy with reasons, and --dry-run deletes nothing', async () => {
    for (const name of ['p-1', 'p-2', 'p-3']) expect((await runPitr(['snapshot', 'create', '--name', name], env)).code).toBe(0);
    const keepOne = ['--keep-daily', '1', '--keep-weekly', '0', '--keep-monthly', '0', '--keep-yearly', '0'];
    const dry = await runPitr(['snapshot', 'prune', ...keepOne, '--dry-run', '--json'], env);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.json.snapshots.filter((s: { keep: boolean }) => s.keep).map((s: { name: string }) => s.name)).toEqual(['p-3']);
    expect(dry.json.snapshots.find((s: { name: string }) => s.name === 'p-3').reasons[0]).toBe('newest');
    expect(dry.json.deleted).toEqual([]);
    const real = await runPitr(['snapshot', 'prune', ...keepOne, '--json'], env);
    expect(real.json.deleted.sort()).toEqual(['needs-second', 'p-1', 'p-2']);
    expect((await runPitr(['snapshot', 'list', '--json'], env)).json.snapshots.map((s: { name: string }) => s.name)).toEqual(['p-3']);
    const bad = await runPitr(['snapshot', 'prune', '--keep-daily', '-1'], env);
    expect(bad.code).toBe(2);
  });

  it('migrate: restore point first, the command streamed, its exit code, and the exact rollback command on failure', async () => {
    const ok = await runPitr(['migrate', '--name', 'mig-ok', '--', process.execPath, '-e', "console.log('migrated 3 tables')"], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('migrated 3 tables');
    expect(ok.stdout).toContain('Migration succeeded');
    const failed = await runPitr(['migrate', '--name', 'mig-bad', '--json', '--', process.execPath, '-e', "console.log('step 1 ok'); console.error('step 2 failed'); process.exit(3)"], env);
    expect(failed.code).toBe(3);
    expect(failed.json).toMatchObject({ failed: true, exitCode: 3, rollbackCommand: 'pitr playbook run failed-migration --set at=snapshot:mig-bad' });
    // Under --json the migration's own output goes to stderr, so stdout stays one JSON document.
    expect(failed.stderr).toContain('step 1 ok');
    expect(failed.stderr).toContain('step 2 failed');
    const missing = await runPitr(['migrate', '--name', 'mig-missing', '--', 'no-such-migration-tool'], env);
    expect(missing.code).toBe(127);
    expect(missing.stdout).toContain('command not found');
    const names = (await runPitr(['snapshot', 'list', '--json'], env)).json.snapshots.map((s: { name: string }) => s.name);
    expect(names).toEqual(expect.arrayContaining(['mig-ok', 'mig-bad', 'mig-missing']));
    const dupe = await runPitr(['migrate', '--name', 'mig-bad', '--', process.execPath, '-e', "console.log('must not run')"], env);
    expect(dupe.code).toBe(2);
    expect(dupe.stdout).not.toContain('must not run');
  });
});
