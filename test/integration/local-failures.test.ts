import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempRoot, startCluster, switchAndArchiveWal, type TestCluster } from '../support/cluster.js';
import { processesUsing, runPitr } from '../support/cli.js';
import { TEST_DB_PASSWORD } from '../support/secrets.js';

/** Every failure of `pitr --at` is one line, a non-zero exit, and leaves no server or directory behind. */
describe('pitr --at failure modes (local provider)', () => {
  let prod: TestCluster;
  let work: string;
  let env: Record<string, string>;
  let backupStartedAt: string;

  const branchDirs = async () => (await readdir(join(work, 'pitr', 'branches')).catch(() => [] as string[])).filter((d) => !d.startsWith('.'));

  function expectOneLine(stderr: string) {
    const lines = stderr.trim().split('\n').filter((l) => !l.startsWith('pitr: ') || l.startsWith('pitr: error:'));
    expect(lines.filter((l) => l.startsWith('pitr: error:'))).toHaveLength(1);
  }

  beforeAll(async () => {
    prod = await startCluster({ archive: true });
    work = await makeTempRoot('pitr-work-');
    env = { DATABASE_URL: prod.url, PITR_BACKUP_DIR: join(work, 'backups'), PITR_WAL_ARCHIVE: prod.archiveDir, PITR_WORK_DIR: join(work, 'pitr'), PITR_ARCHIVE_WAIT: '5s' };
    await prod.query(`create table t(id int primary key, note text); insert into t select g, 'row' from generate_series(1, 1000) g;`);
    backupStartedAt = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 50));
    const backup = await runPitr(['backup'], env);
    expect(backup.code, backup.stderr).toBe(0);
  });

  afterEach(async () => {
    // Nothing left behind: no half-restored directory, no stray server.
    expect(await branchDirs()).toEqual([]);
    expect(await processesUsing(join(work, 'pitr'))).toEqual([]);
  });

  afterAll(async () => {
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('no backups: says so and how to take one', async () => {
    const r = await runPitr(['--at', '-1s'], { ...env, PITR_BACKUP_DIR: join(work, 'empty-backups') });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no base backups of this production');
    expect(r.stderr).toContain('pitr backup');
    expectOneLine(r.stderr);
  });

  it('target before the oldest backup: names the recoverable window', async () => {
    const r = await runPitr(['--at', backupStartedAt, '--json'], env);
    expect(r.code).toBe(2);
    expect(r.json.error.code).toBe('target_before_backups');
    expect(r.json.error.message).toMatch(/is before the oldest base backup \(consistent from .+\); recoverable: /);
    expectOneLine(r.stderr);
  });

  it('target after the end of the archived WAL: reports what Postgres said', async () => {
    await prod.query(`insert into t values (5001, 'not archived yet')`);
    await new Promise((r) => setTimeout(r, 20));
    // --offline: production is not asked to switch WAL, so the newest commits are not in the archive.
    const r = await runPitr(['--at', 'now', '--offline', '--json'], env);
    expect(r.code).toBe(1);
    expect(r.json.error.code).toBe('target_after_archive');
    expect(r.json.error.message).toContain('recovery ended before configured recovery target was reached');
    expectOneLine(r.stderr);
    // The server log of the failed attempt is kept for the post-mortem.
    expect((await readdir(join(work, 'pitr', 'logs'))).some((f) => f.endsWith('-failed.log'))).toBe(true);
  });

  it('missing WAL segment: names the segment', async () => {
    await prod.query(`insert into t values (6001, 'a')`);
    const missing = await switchAndArchiveWal(prod);
    await prod.query(`insert into t values (6002, 'b')`);
    await switchAndArchiveWal(prod);
    const [{ now }] = (await prod.query<{ now: string }>('select now()::text as now')) as [{ now: string }];
    await new Promise((r) => setTimeout(r, 20));
    await prod.query(`insert into t values (6003, 'c')`);
    await switchAndArchiveWal(prod);
    const aside = join(work, `${missing}.aside`);
    await rename(join(prod.archiveDir, missing), aside);
    try {
      const r = await runPitr(['--at', now, '--json'], env);
      expect(r.code).toBe(1);
      expect(r.json.error.code).toBe('wal_missing');
      expect(r.json.error.message).toContain(`WAL segment ${missing} is missing from the archive`);
      expectOneLine(r.stderr);
      const status = await runPitr(['status', '--json'], env);
      expect(status.code).toBe(1);
      expect(status.json.problems.join('\n')).toContain(`WAL segment ${missing} is missing`);
    } finally {
      await rename(aside, join(prod.archiveDir, missing));
    }
    // With the segment back, the same target works.
    const ok = await runPitr(['--at', now, '--json'], env);
    expect(ok.code, ok.stderr).toBe(0);
    expect((await runPitr(['branches', 'delete', ok.json.id], env)).code).toBe(0);
  });

  it('unreachable production: one line for --at, backup and status', async () => {
    const down = { ...env, DATABASE_URL: `postgresql://postgres:${TEST_DB_PASSWORD}@127.0.0.1:9/postgres` };
    const at = await runPitr(['--at', 'now'], down);
    expect(at.code).toBe(1);
    expect(at.stderr).toContain('production is unreachable: cannot connect to 127.0.0.1:9/postgres: connection refused');
    expect(at.stderr).toContain('--offline');
    expectOneLine(at.stderr);
    const backup = await runPitr(['backup'], down);
    expect(backup.code).toBe(1);
    expect(backup.stderr).toContain('production is unreachable');
    const status = await runPitr(['status', '--json'], down);
    expect(status.code).toBe(1);
    expect(status.json.ok).toBe(false);
    for (const r of [at, backup, status]) expect(r.stdout + r.stderr).not.toContain(TEST_DB_PASSWORD);
  });

  it('archiving failing: status exits 1 and says why', async () => {
    await prod.query(`alter system set archive_command = 'false'`);
    await prod.query(`select pg_reload_conf()`);
    try {
      await prod.query(`insert into t values (7001, 'x'); select pg_switch_wal();`);
      const deadline = Date.now() + 20_000;
      let r = await runPitr(['status', '--json'], env);
      while (r.code === 0 && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 250));
        r = await runPitr(['status', '--json'], env);
      }
      expect(r.code).toBe(1);
      expect(r.json.problems.join('\n')).toMatch(/WAL archiving is failing: \d+ failures/);
    } finally {
      await prod.query(`alter system reset archive_command`);
      await prod.query(`select pg_reload_conf()`);
    }
  });
});

describe('bad input is refused before any work (exit 2)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempRoot('pitr-input-');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const env = () => ({ DATABASE_URL: 'postgresql://u@127.0.0.1:9/db', PITR_BACKUP_DIR: join(dir, 'b'), PITR_WAL_ARCHIVE: join(dir, 'w'), PITR_WORK_DIR: join(dir, 'work') });

  it.each([
    [['--at', 'yesterday-ish'], 'could not read "yesterday-ish"'],
    [['--at', '+5m'], '+5m'],
    [['--at', '2026-11-25'], 'time of day'],
    [['--at', '2099-01-01T00:00:00Z'], 'future'],
    [['--at', 'lsn:xyz'], 'lsn:xyz'],
    [['--at', '-1m', '--ttl', 'soon'], 'soon'],
    [['--at', '2026-11-25 10:00', '--tz', 'Mars/Olympus'], 'Mars/Olympus'],
    [['--at', '-1m', '--provider', 'aws'], 'aws'],
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['branch', 'create'], 'needs --at'],
  ])('pitr %j', async (args, message) => {
    const r = await runPitr(args, env(), { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('pitr: error:'))).toHaveLength(1);
  });

  it('a bad config file names the file and the field', async () => {
    await writeFile(join(dir, 'pitr.config.json'), JSON.stringify({ backupDir: 5 }));
    try {
      const r = await runPitr(['status'], {}, { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/invalid config .*pitr\.config\.json: backupDir: /);
      await writeFile(join(dir, 'pitr.config.json'), JSON.stringify({ backupDirectory: '/x' }));
      const typo = await runPitr(['status'], {}, { cwd: dir });
      expect(typo.code).toBe(2);
      expect(typo.stderr).toContain('backupDirectory');
    } finally {
      await rm(join(dir, 'pitr.config.json'));
    }
  });

  it('playbooks: list, validate, and a broken one names its line and YAML path', async () => {
    const list = await runPitr(['playbook', 'list', '--json'], {}, { cwd: dir });
    expect(list.code, list.stderr).toBe(0);
    expect(list.json.playbooks.map((p: { name: string }) => p.name)).toContain('accidental-deletion');
    expect((await runPitr(['playbook', 'validate', 'accidental-deletion'], {}, { cwd: dir })).code).toBe(0);
    await writeFile(join(dir, 'bad.yaml'), 'name: x\nsteps:\n  - type: recover\n    with: { tables: [a], mode: deleted }\n');
    const bad = await runPitr(['playbook', 'validate', join(dir, 'bad.yaml')], {}, { cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('bad.yaml:4:32 steps[0].with.mode: Invalid option: expected one of "missing"|"changed"|"all"');
  });

  it('a bad DATABASE_URL names the variable', async () => {
    const r = await runPitr(['status'], { DATABASE_URL: 'mysql://x' }, { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('invalid DATABASE_URL');
  });
});
