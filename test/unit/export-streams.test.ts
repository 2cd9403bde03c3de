import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ChildFanOut, ChildSink, HashTap, HoldLastChunk } from '../../src/export/streams.js';
import { bodyFailure, errnoCode, errorMessage, fsReason, mapStreamErrors, missingDir, syncDir, toBuffer, tooLarge } from '../../src/export/store/shared.js';
import { PitrError } from '../../src/errors.js';
import { refusal } from '../support/refusal.js';

/** A stand-in child process: an event emitter with a stdin whose buffer is tiny, so backpressure happens. */
class FakeChild extends EventEmitter {
  readonly received: Buffer[] = [];
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  killedWith: string | undefined;
  readonly stdin: Writable;
  private pending: (() => void)[] = [];
  constructor(opts: { stall?: boolean } = {}) {
    super();
    this.stdin = new Writable({
      highWaterMark: 4,
      write: (chunk: Buffer, _e, cb) => {
        this.received.push(chunk);
        if (opts.stall) this.pending.push(() => cb());
        else setImmediate(cb);
      },
    });
  }
  release(): void {
    for (const p of this.pending.splice(0)) p();
  }
  kill(signal: string): boolean {
    this.killedWith = signal;
    this.signalCode = signal as NodeJS.Signals;
    return true;
  }
  exit(code: number): void {
    this.exitCode = code;
    this.emit('exit', code, null);
  }
  text(): string {
    return Buffer.concat(this.received).toString();
  }
}
const asChild = (c: FakeChild) => c as unknown as ChildProcess;
const chunks = (...parts: string[]) => Readable.from(parts.map((p) => Buffer.from(p)));

describe('HoldLastChunk: the last chunk waits for the check', () => {
  it('passes everything through when the check passes', async () => {
    const out: string[] = [];
    let checked = false;
    await pipeline(chunks('a', 'b', 'c'), new HoldLastChunk(() => { checked = true; }), new Writable({ write: (c: Buffer, _e, cb) => { out.push(c.toString()); cb(); } }));
    expect(checked).toBe(true);
    expect(out.join('')).toBe('abc');
  });

  it('withholds the last chunk when the check fails (also for a non-Error rejection)', async () => {
    for (const failing of [() => Promise.reject(new Error('tampered')), () => Promise.reject('plain')]) {
      const out: string[] = [];
      const done = pipeline(chunks('a', 'b', 'END'), new HoldLastChunk(failing), new Writable({ write: (c: Buffer, _e, cb) => { out.push(c.toString()); cb(); } }));
      await expect(done).rejects.toThrow(/tampered|plain/);
      expect(out).not.toContain('END');
    }
  });
});

describe('HashTap: counts and hashes what passes', () => {
  it('counts bytes, reports progress and hashes like sha256', async () => {
    const tap = new HashTap();
    const seen: number[] = [];
    tap.onBytes = (b) => seen.push(b);
    await pipeline(chunks('hello ', 'world'), tap, new PassThrough().resume());
    expect(tap.bytes).toBe(11);
    expect(seen).toEqual([6, 11]);
    expect(tap.hex()).toBe(createHash('sha256').update('hello world').digest('hex'));
    expect(tap.hex()).toBe(tap.hex());
  });

  it('beforeEnd may veto the end', async () => {
    const ok = new HashTap();
    ok.beforeEnd = () => Promise.resolve();
    await pipeline(chunks('x'), ok, new PassThrough().resume());
    for (const why of [new Error('size differs'), 'size differs']) {
      const tap = new HashTap();
      tap.beforeEnd = () => Promise.reject(why);
      await expect(pipeline(chunks('x'), tap, new PassThrough().resume())).rejects.toThrow('size differs');
    }
  });
});

describe('ChildSink: feeds a child, kills it if the pipeline fails', () => {
  it('writes everything with backpressure and ends stdin', async () => {
    const child = new FakeChild();
    let ended = false;
    child.stdin.on('finish', () => { ended = true; });
    await pipeline(chunks('aaaaaaaa', 'bbbbbbbb', 'c'), new ChildSink(asChild(child), 'pg_restore'));
    expect(child.text()).toBe('aaaaaaaabbbbbbbbc');
    expect(ended).toBe(true);
    expect(child.killedWith).toBeUndefined();
  });

  it('a failing source kills the child with SIGKILL before its input ends', async () => {
    const child = new FakeChild();
    const src = new Readable({ read() { this.destroy(new Error('decrypt failed')); } });
    await expect(pipeline(src, new ChildSink(asChild(child), 'pg_restore'))).rejects.toThrow('decrypt failed');
    expect(child.killedWith).toBe('SIGKILL');
  });

  it('a child that exits early fails the write with the program name', async () => {
    const child = new FakeChild({ stall: true });
    const sink = new ChildSink(asChild(child), 'pg_restore');
    const done = pipeline(chunks('aaaaaaaa', 'bbbbbbbb', 'cccccccc'), sink);
    await new Promise((r) => setImmediate(r));
    child.exit(1);
    child.release();
    await expect(done).rejects.toThrow('pg_restore exited before reading all of its input');
    expect(child.killedWith).toBeUndefined();
  });

  it('a stdin error is reported as the program no longer reading', async () => {
    const child = new FakeChild({ stall: true });
    const sink = new ChildSink(asChild(child), 'psql');
    child.stdin.destroy(new Error('EPIPE'));
    await new Promise((r) => setImmediate(r));
    await expect(pipeline(chunks('x'), sink)).rejects.toThrow('psql stopped reading its input (EPIPE)');
  });
});

describe('ChildFanOut: one stream into several children', () => {
  it('feeds every child the whole stream and ends them', async () => {
    const a = new FakeChild();
    const b = new FakeChild();
    await pipeline(chunks('aaaaaaaa', 'bbbbbbbb', 'c'), new ChildFanOut([asChild(a), asChild(b), { stdin: null } as unknown as ChildProcess]));
    expect(a.text()).toBe('aaaaaaaabbbbbbbbc');
    expect(b.text()).toBe('aaaaaaaabbbbbbbbc');
  });

  it('a child that stops reading is left out; the others still get everything', async () => {
    const quitter = new FakeChild({ stall: true });
    const reader = new FakeChild();
    const fan = new ChildFanOut([asChild(quitter), asChild(reader)]);
    const done = pipeline(chunks('aaaaaaaa', 'bbbbbbbb', 'cccccccc', 'd'), fan);
    await new Promise((r) => setImmediate(r));
    quitter.stdin.destroy();
    await done;
    expect(reader.text()).toBe('aaaaaaaabbbbbbbbccccccccd');
    expect(quitter.text().length).toBeLessThan(25);
  });

  it('a slow real reader gets every byte: the end waits until each stdin has flushed', async () => {
    // When the source ends, the last chunks may still sit in the child's stdin; ending the fan-out
    // must not discard them (pg_restore saw "end of file" when it did).
    // It reads 16 KiB a millisecond, so the pipe stays full and the last write() is queued.
    const slowReader = `const fs = require('fs'); const b = Buffer.alloc(16384); let n = 0;
      const t = setInterval(() => { const r = fs.readSync(0, b, 0, b.length, null); if (r === 0) { clearInterval(t); process.stdout.write(String(n)); } n += r; }, 1);`;
    const reader = spawn(process.execPath, ['-e', slowReader], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    reader.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise((r) => reader.on('close', r));
    const chunk = Buffer.alloc(256 * 1024, 7);
    // The small last chunk fits under the stdin's high-water mark: write() says "go on" at once.
    const tail = Buffer.alloc(100, 8);
    await pipeline(Readable.from([...Array.from({ length: 16 }, () => chunk), tail]), new ChildFanOut([reader]));
    await exited;
    expect(Number(out)).toBe(16 * chunk.length + tail.length);
  });

  it('destroying the fan-out destroys every stdin', () => {
    const a = new FakeChild();
    const fan = new ChildFanOut([asChild(a)]);
    fan.destroy();
    expect(a.stdin.destroyed).toBe(true);
  });
});

describe('export store shared helpers', () => {
  it('errorMessage and errnoCode: first line, redacted; string codes only', () => {
    expect(errorMessage(new Error('\nfailed for postgres://u:hunter2@h/db\nmore'))).not.toMatch(/hunter2|more/);
    expect(errorMessage('plain')).toBe('plain');
    expect(errnoCode(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe('ENOENT');
    expect(errnoCode(Object.assign(new Error('x'), { code: 42 }))).toBeUndefined();
    expect(errnoCode(null)).toBeUndefined();
  });

  it('toBuffer takes bytes and strings, refuses object-mode chunks', () => {
    expect(toBuffer(Buffer.from('ab')).toString()).toBe('ab');
    expect(toBuffer('ab').toString()).toBe('ab');
    const u8 = new Uint8Array([0, 97, 98, 0]).subarray(1, 3);
    expect(toBuffer(u8).toString()).toBe('ab');
    expect(refusal(() => toBuffer({ a: 1 })).code).toBe('export_write_failed');
  });

  it('fsReason names common errno codes in words, else the message', () => {
    expect(fsReason(Object.assign(new Error('x'), { code: 'ENOSPC' }))).toBe('no space left on the device');
    expect(fsReason(Object.assign(new Error('x'), { code: 'EACCES' }))).toBe('permission denied');
    expect(fsReason(Object.assign(new Error('odd thing'), { code: 'EWHAT' }))).toBe('odd thing');
  });

  it('bodyFailure keeps PitrErrors, wraps the rest; missingDir and tooLarge name the place', () => {
    const own = new PitrError('interrupted', 'stop');
    expect(bodyFailure(own, 'k', 'l')).toBe(own);
    const wrapped = bodyFailure(new Error('pg_dump died'), 'e.dump.enc', '/x');
    expect(wrapped).toMatchObject({ code: 'export_write_failed', message: 'writing e.dump.enc to /x stopped: the data stream failed: pg_dump died' });
    expect(missingDir('/nope', undefined)).toMatchObject({ code: 'export_location_missing', message: 'export directory /nope does not exist' });
    expect(tooLarge('m.json', '/x', 99)).toMatchObject({ code: 'export_too_large' });
  });

  it('mapStreamErrors re-emits data, maps errors, and destroying it destroys the source', async () => {
    const out: string[] = [];
    await pipeline(mapStreamErrors(chunks('a', 'b'), (e) => e as Error), new Writable({ write: (c: Buffer, _e, cb) => { out.push(c.toString()); cb(); } }));
    expect(out.join('')).toBe('ab');
    const failing = new Readable({ read() { this.destroy(new Error('socket reset')); } });
    const mapped = mapStreamErrors(failing, (e) => new PitrError('s3_read_failed', `read failed: ${(e as Error).message}`));
    await expect(pipeline(mapped, new PassThrough().resume())).rejects.toMatchObject({ code: 's3_read_failed' });
    const src = new PassThrough();
    const m = mapStreamErrors(src, (e) => e as Error);
    m.destroy();
    await new Promise((r) => setImmediate(r));
    expect(src.destroyed).toBe(true);
  });

  it('syncDir is best effort: a directory syncs, a missing one is not an error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pitr-sync-'));
    try {
      await expect(syncDir(dir)).resolves.toBeUndefined();
      await expect(syncDir(join(dir, 'missing'))).resolves.toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
