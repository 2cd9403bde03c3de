import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerWebhook, resolveConfig } from '../../src/config/index.js';
import { PitrError } from '../../src/errors.js';
import { redactDeep, redactSecrets, redactUrl } from '../../src/redact.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pitr-config-secrets-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function refusal(p: Promise<unknown>): Promise<PitrError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PitrError);
  return err as PitrError;
}

describe('config: values that are code or secrets', () => {
  it('reads drill checks as JSON from the environment, and refuses text that is not a list of checks', async () => {
    const checks = [{ name: 'orders', sql: 'select count(*) from orders', expect: 3 }];
    const config = await resolveConfig({ flags: {}, env: { PITR_DRILL_CHECKS: JSON.stringify(checks) }, cwd: dir });
    expect(config.drillChecks).toEqual(checks);
    for (const bad of ['not json', '{"sql":"select 1"}', '[{"sql":""}]', '[{"sql":"select 1","expect":1,"extra":true}]']) {
      const e = await refusal(resolveConfig({ flags: {}, env: { PITR_DRILL_CHECKS: bad }, cwd: dir }));
      expect([e.code, e.exitCode]).toEqual(['bad_config', 2]);
      expect(e.message).toMatch(/^invalid PITR_DRILL_CHECKS: /);
    }
  });

  it('a --config file that cannot be read is a usage error naming it', async () => {
    const e = await refusal(resolveConfig({ flags: { config: 'missing.yaml' }, env: {}, cwd: dir }));
    expect([e.code, e.exitCode, e.message]).toEqual(['bad_config', 2, `cannot read config file ${join(dir, 'missing.yaml')}`]);
  });

  it('a webhook URL must be http(s), and is then redacted everywhere: whole, its token path, its password', async () => {
    const e = await refusal(resolveConfig({ flags: {}, env: { PITR_NOTIFY_URL: 'ftp://hooks.example/x' }, cwd: dir }));
    expect(e.message).toBe('invalid PITR_NOTIFY_URL: must be an http(s) URL');
    const hook = 'https://hooks.slack.example/services/T0001/B0002/XXXXsecrettoken';
    await resolveConfig({ flags: {}, env: { PITR_NOTIFY_URL: hook }, cwd: dir });
    expect(redactSecrets(`posting to ${hook}`)).not.toContain('XXXXsecrettoken');
    // The path alone, as it might appear in an error from the HTTP client.
    expect(redactSecrets('404 for /services/T0001/B0002/XXXXsecrettoken')).not.toContain('XXXXsecrettoken');
    registerWebhook('https://user:hook-pass-1@hooks.example/a');
    expect(redactSecrets('auth hook-pass-1 refused')).not.toContain('hook-pass-1');
    registerWebhook(undefined);
  });

  it("the database URL's password is registered: redacted even where it appears without its URL", async () => {
    await resolveConfig({ flags: {}, env: { DATABASE_URL: 'postgres://app:pa%24%24-w0rd-9@db/x' }, cwd: dir });
    expect(redactSecrets('FATAL: password pa$$-w0rd-9 rejected')).not.toContain('pa$$-w0rd-9');
    expect(redactSecrets('url-encoded: pa%24%24-w0rd-9')).not.toContain('pa%24%24-w0rd-9');
  });
});

describe('redaction', () => {
  it('masks passwords in URLs, password= settings and bearer tokens, keeping the rest readable', () => {
    expect(redactSecrets("postgres://u:p4ss@h/db host=h password='a b' Bearer abc.def")).toBe("postgres://u:********@h/db host=h password=******** Bearer ********");
    expect(redactUrl('postgres://u:p4ss@h:5432/db?sslmode=require')).toBe('postgres://u:********@h:5432/db?sslmode=require');
    expect(redactUrl('not a url, password=x1')).toBe('not a url, password=********');
  });

  it('redactDeep masks secret-named fields and every string, but leaves dates, numbers and structure', () => {
    const at = new Date('2026-01-01T00:00:00Z');
    expect(redactDeep({ password: 'short', apiKey: 'k', nested: [{ url: 'postgres://u:p4ss@h/db', n: 1, at }], ok: null })).toEqual({
      password: '********',
      apiKey: '********',
      nested: [{ url: 'postgres://u:********@h/db', n: 1, at }],
      ok: null,
    });
  });
});
