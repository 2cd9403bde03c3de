import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../src/config/index.js';
import { PitrError } from '../../src/errors.js';

describe('config resolution', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pitr-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('flags beat environment beats file; paths in the file are relative to it', async () => {
    await writeFile(join(dir, 'pitr.config.yaml'), 'backupDir: backups\nwalArchive: /abs/wal\nworkDir: w\nttl: 2h\n');
    const config = await resolveConfig({
      flags: { workDir: 'from-flag' },
      env: { PITR_WAL_ARCHIVE: '/env/wal', PITR_WORK_DIR: '/env/work' },
      cwd: dir,
    });
    expect(config.backupDir).toBe(join(dir, 'backups'));
    expect(config.walArchive).toBe('/env/wal');
    expect(config.workDir).toBe(join(dir, 'from-flag'));
    expect(config.ttl).toBe('2h');
    expect(config.file).toBe(join(dir, 'pitr.config.yaml'));
    await rm(join(dir, 'pitr.config.yaml'));
  });

  it('defaults: local provider, ./.pitr work dir, 24h ttl; neon when an API key is set', async () => {
    const local = await resolveConfig({ flags: {}, env: {}, cwd: dir });
    expect(local).toMatchObject({ provider: 'local', workDir: join(dir, '.pitr'), ttl: '24h', logLevel: 'warn', file: null });
    const neon = await resolveConfig({ flags: {}, env: { NEON_API_KEY: 'napi_abcdefgh' }, cwd: dir });
    expect(neon.provider).toBe('neon');
  });

  it.each([
    [{ backupDir: 5 }, /pitr\.config\.json: backupDir: /],
    [{ provider: 'aws' }, /pitr\.config\.json: provider: /],
    [{ databaseUrl: 'mysql://x' }, /databaseUrl: must be a postgres/],
    [{ ttl: 'forever' }, /ttl: must be a duration/],
    [{ backupDirectory: '/x' }, /backupDirectory/],
  ])('a bad file %j is a one-line usage error naming the field', async (content, message) => {
    const file = join(dir, 'pitr.config.json');
    await writeFile(file, JSON.stringify(content));
    const err = await resolveConfig({ flags: {}, env: {}, cwd: dir }).catch((e: unknown) => e);
    await rm(file);
    expect(err).toBeInstanceOf(PitrError);
    expect((err as PitrError).exitCode).toBe(2);
    expect((err as PitrError).message).toMatch(message);
    expect((err as PitrError).message).not.toContain('\n');
  });

  it('unparseable YAML names the file', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, 'backupDir: [unclosed\n');
    const err = (await resolveConfig({ flags: { config: file }, env: {}, cwd: dir }).catch((e: unknown) => e)) as PitrError;
    expect(err.message).toMatch(/^invalid config .*bad\.yaml: /);
  });

  it('environment values are validated and named', async () => {
    const err = (await resolveConfig({ flags: {}, env: { PITR_ARCHIVE_WAIT: 'a bit' }, cwd: dir }).catch((e: unknown) => e)) as PitrError;
    expect(err.message).toBe('invalid PITR_ARCHIVE_WAIT: must be a duration like 90s, 15m, 24h or 7d');
  });
});

describe('demo data', () => {
  it('sizes add up and every series is bigint (int products overflow past ~270k rows)', async () => {
    const { comicsLoadSql, comicsSizes } = await import('../../src/demo/comics.js');
    const sizes = comicsSizes(500_000);
    expect(Object.values(sizes).reduce((a, b) => a + b, 0)).toBe(500_000);
    for (const sql of comicsLoadSql(sizes)) {
      for (const series of sql.match(/generate_series\([^,]+,/g) ?? []) expect(series).toMatch(/::bigint,$/);
    }
  });
});
