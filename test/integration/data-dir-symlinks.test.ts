import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, chown, mkdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempRoot } from '../support/cluster.js';
import { isRoot, postgresOsUser } from '../../src/system/process.js';
import { writeServerFile } from '../../src/system/postgres-server.js';
import { prepareInstance, type InstanceRestore } from '../../src/providers/local/recovery.js';
import { findPostgresBinaries } from '../../src/system/postgres-binaries.js';

/**
 * Finding 5 of the safety review (issue 13): a data directory belongs to the postgres OS user,
 * who can plant symlinks in it. pitr, often root, must never write, append or chown through
 * one: the files the links point to stay exactly as they were.
 */
describe.runIf(isRoot())('writes into a data directory never follow a symlink', () => {
  let root: string;
  let victims: string;
  const names = ['recovery.signal', 'postgresql.auto.conf', 'postgresql.conf', 'pg_hba.conf', 'backup_manifest'];
  const victim = (name: string) => join(victims, `${name}.victim`);
  const snapshot = async () =>
    Promise.all(names.map(async (n) => ({ n, text: await readFile(victim(n), 'utf8'), ...(({ uid, gid, mode }) => ({ uid, gid, mode }))(await stat(victim(n))) })));

  beforeAll(async () => {
    root = await makeTempRoot('pitr-symlinks-');
    // Files only root may write, e.g. /etc/shadow in real life.
    victims = join(root, 'root-only');
    await mkdir(victims);
    await chown(victims, 0, 0);
    await chmod(victims, 0o755);
    for (const n of names) {
      await writeFile(victim(n), `original ${n}\n`);
      await chmod(victim(n), 0o644);
    }
    // A base backup whose config files are symlinks planted by the postgres user.
    const { uid, gid } = await postgresOsUser();
    const backup = join(root, 'backup');
    await mkdir(backup);
    await writeFile(join(backup, 'PG_VERSION'), '15\n');
    for (const n of names) await symlink(victim(n), join(backup, n));
    await chown(backup, uid, gid);
    await chown(join(backup, 'PG_VERSION'), uid, gid);
  });
  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  it('finding 5: writeServerFile (write and append) refuses a symlink and leaves its target alone', async () => {
    const before = await snapshot();
    const dataDir = join(root, 'backup');
    await expect(writeServerFile(join(dataDir, 'recovery.signal'), '')).rejects.toMatchObject({ code: 'unsafe_data_dir' });
    await expect(writeServerFile(join(dataDir, 'postgresql.auto.conf'), "port = 1\n", true)).rejects.toMatchObject({ code: 'unsafe_data_dir' });
    await expect(writeServerFile(join(dataDir, 'pg_hba.conf'), 'host all all 0.0.0.0/0 trust\n')).rejects.toMatchObject({ code: 'unsafe_data_dir' });
    expect(await snapshot()).toEqual(before);
  });

  it('finding 5: preparing a recovery instance from a backup with planted symlinks touches nothing outside it', async () => {
    const before = await snapshot();
    const bin = await findPostgresBinaries();
    const req = {
      bin,
      backup: { id: 'b', dataDir: join(root, 'backup') },
      target: { kind: 'time', at: new Date(), input: 'now' },
      dataDir: join(root, 'instance'),
      logFile: join(root, 'instance.log'),
      port: 1,
      restoreCommand: 'false',
      url: 'postgresql://x@127.0.0.1:1/x',
      explainShortArchive: async () => null,
      timeoutMs: 1000,
    } as unknown as InstanceRestore;
    await expect(prepareInstance(req)).rejects.toMatchObject({ code: 'unsafe_data_dir' });
    expect(await snapshot()).toEqual(before);
  });
});
