import { describe, expect, it } from 'vitest';
import { PassThrough } from 'node:stream';
import { redactDeep, redactSecrets, redactUrl, registerSecret } from '../../src/redact.js';
import { Output } from '../../src/cli/output.js';
import { PitrError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';

describe('secret redaction', () => {
  it('hides passwords in URLs, keyword strings and bearer tokens', () => {
    expect(redactSecrets('connect postgresql://app:s3cret@db:5432/app failed')).toBe('connect postgresql://app:********@db:5432/app failed');
    expect(redactSecrets("host=db password='a b' user=x")).toBe('host=db password=******** user=x');
    expect(redactSecrets('Authorization: Bearer napi_123abc')).toBe('Authorization: Bearer ********');
    expect(redactUrl('postgres://u:p%40ss@h/db')).toBe('postgres://u:********@h/db');
  });

  it('hides registered secrets anywhere, also URL-encoded, and in nested objects', () => {
    registerSecret('napi_live_key_0123');
    registerSecret('p@ss word');
    expect(redactSecrets('key napi_live_key_0123 leaked')).toBe('key ******** leaked');
    expect(redactSecrets('x p%40ss%20word y')).toBe('x ******** y');
    expect(redactDeep({ a: ['napi_live_key_0123'], password: 'anything', nested: { apiKey: 'k' } })).toEqual({
      a: ['********'],
      password: '********',
      nested: { apiKey: '********' },
    });
  });

  it('the output writer redacts results, notes and errors in both modes', () => {
    registerSecret('hunter2-secret');
    for (const json of [false, true]) {
      const stdout = new PassThrough();
      const stderr = new PassThrough();
      const out = new Output({ json, stdout, stderr });
      out.result({ url: 'postgresql://u:hunter2-secret@h/db' }, (d) => d.url);
      out.note('note hunter2-secret');
      expect(out.error(new PitrError('x', 'failed with hunter2-secret', { exit: 'refused' }))).toBe(3);
      const text = String(stdout.read() ?? '') + String(stderr.read() ?? '');
      expect(text).not.toContain('hunter2-secret');
      if (json) expect(text).toContain('"error":{"code":"x"');
    }
  });

  it('reveal shows what the user explicitly asked for, on stdout only', () => {
    registerSecret('shown-on-request');
    const stdout = new PassThrough();
    const out = new Output({ json: true, stdout, stderr: new PassThrough() });
    out.result({ url: 'postgresql://u:shown-on-request@h/db' }, (d) => d.url, { reveal: true });
    expect(String(stdout.read())).toContain('shown-on-request');
  });

  it('the logger redacts strings and objects', async () => {
    registerSecret('log-secret-value');
    const { mkdtemp, readFile, rm } = await import('node:fs/promises');
    const { openSync, closeSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'pitr-log-'));
    const fd = openSync(join(dir, 'log'), 'w');
    const logger = createLogger('info', { fd } as unknown as NodeJS.WritableStream);
    logger.info({ url: 'postgresql://u:log-secret-value@h/db', apiKey: 'zzz' }, 'connecting with log-secret-value');
    logger.flush();
    closeSync(fd);
    const text = await readFile(join(dir, 'log'), 'utf8');
    await rm(dir, { recursive: true });
    expect(text).toContain('connecting with ********');
    expect(text).not.toContain('log-secret-value');
    expect(text).not.toContain('zzz');
  });
});
