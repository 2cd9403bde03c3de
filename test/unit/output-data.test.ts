import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { Output } from '../../src/cli/output.js';

function sink(isTTY = false) {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, done) {
      text += chunk.toString();
      done();
    },
  }) as Writable & { isTTY?: boolean };
  stream.isTTY = isTTY;
  return { stream, text: () => text };
}

const row = { id: '1', password: 'hunter2', token: 'tok_123456', secret: 'password=topsecret', url: 'postgres://bob:pw-in-data@db/app' };

describe('Output: row values are data, never redacted; pitr metadata still is', () => {
  it('--json: fields named as data pass untouched, the rest is redacted', () => {
    const out = sink();
    const o = new Output({ json: true, stdout: out.stream, stderr: sink().stream });
    o.result({ branch: 'postgres://admin:s3cr3t-pass@prod/db', differences: [{ branch: row, production: null }] }, () => '', { data: ['differences'] });
    const parsed = JSON.parse(out.text());
    expect(parsed.differences[0].branch).toEqual(row);
    expect(parsed.branch).toBe('postgres://admin:********@prod/db');
  });

  it('without data fields, everything is redacted as before', () => {
    const out = sink();
    new Output({ json: true, stdout: out.stream, stderr: sink().stream }).result({ differences: [row] }, () => '');
    expect(JSON.parse(out.text()).differences[0]).toMatchObject({ password: '********', url: 'postgres://bob:********@db/app' });
  });

  it('text: the renderer sees data as is and metadata redacted', () => {
    const out = sink();
    const o = new Output({ json: false, stdout: out.stream, stderr: sink().stream });
    o.result({ label: 'postgres://admin:s3cr3t-pass@prod/db', rows: [row] }, (d) => `${d.label} ${d.rows[0]!.url} ${d.rows[0]!.password}`, { data: ['rows'] });
    expect(out.text()).toBe('postgres://admin:********@prod/db postgres://bob:pw-in-data@db/app hunter2\n');
  });

  it('streamed lines: data lines are exact, other lines redacted; warnings always reach stderr', () => {
    const out = sink();
    const err = sink();
    const o = new Output({ json: true, stdout: out.stream, stderr: err.stream });
    o.stream(JSON.stringify(row), { data: true });
    o.stream('connect postgres://admin:s3cr3t-pass@prod/db');
    o.warn('output truncated: 1 of 2 differences printed (--limit 1)');
    expect(out.text()).toBe(`${JSON.stringify(row)}\nconnect postgres://admin:********@prod/db\n`);
    expect(err.text()).toBe('pitr: output truncated: 1 of 2 differences printed (--limit 1)\n');
  });
});

describe('Output.progress', () => {
  it('fits the progress line to its own terminal, not to the process stderr', () => {
    const err = sink(true);
    (err.stream as Writable & { columns?: number }).columns = 30;
    const out = new Output({ json: false, stdout: sink().stream, stderr: err.stream });
    out.progress({ phase: 'export', message: 'x'.repeat(200) });
    const line = err.text().split('\x1b[2K').at(-1)!;
    expect(line.length).toBe(29);
  });
});
