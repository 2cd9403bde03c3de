import { EventEmitter } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { firstRestoreError, stripToolPrefix, watchChild } from '../../src/export/child-process.js';
import { connectionErrorReason, describeTarget } from '../../src/db/connect.js';
import { directoryRestoreCommand, shellQuote } from '../../src/providers/local/recovery.js';
import { systemIdentifierOnDisk } from '../../src/providers/local/seal.js';
import { confValue, logReason, NO_DURABILITY, renderConf, scratchInstanceConf, serverLogReason, serverPid } from '../../src/system/postgres-server.js';
import { countQuery, rowQuery, sqlQuery } from '../../src/when/queries.js';
import { EMPTY, rangePredicate, sameChecksum, splitRange } from '../../src/diff/checksums.js';
import type { Plan } from '../../src/diff/plan.js';
import type { TableInfo } from '../../src/db/introspect.js';
import { refusal } from '../support/refusal.js';

/** The pure pieces of modules that otherwise talk to Postgres or to child processes. */

describe('pg_dump / pg_restore messages', () => {
  it('stripToolPrefix drops the tool name and its error: or warning: label', () => {
    expect(stripToolPrefix('pg_dump: error: query failed:   ERROR:  permission denied', 'pg_dump')).toBe('query failed: ERROR: permission denied');
    expect(stripToolPrefix('PG_RESTORE: warning: errors ignored', 'pg_restore')).toBe('errors ignored');
    expect(stripToolPrefix('something else', 'pg_dump')).toBe('something else');
  });

  it("firstRestoreError: the first error line, else the first line, redacted", () => {
    const stderr = 'pg_restore: processing item 1\npg_restore: error: could not execute query: ERROR:  relation "t" already exists\npg_restore: error: second';
    expect(firstRestoreError(stderr)).toBe('could not execute query: ERROR: relation "t" already exists');
    expect(firstRestoreError('\n  pg_restore: connection to postgres://u:hunter2@h/db failed\n')).not.toContain('hunter2');
    expect(firstRestoreError('')).toBe('no output');
  });

  it('watchChild collects stderr and the exit', async () => {
    const child = Object.assign(new EventEmitter(), { stderr: new PassThrough(), pid: 42 as number | undefined });
    const done = watchChild(child as unknown as ChildProcess, 'pg_dump');
    child.stderr.write('pg_dump: error: boom\n');
    await new Promise((r) => setImmediate(r));
    child.emit('close', 1, null);
    await expect(done).resolves.toEqual({ code: 1, signal: null, stderr: 'pg_dump: error: boom\n' });
  });

  it('a spawn error is reported with the exit when the process had started', async () => {
    const missing = Object.assign(new EventEmitter(), { stderr: null, pid: undefined as number | undefined });
    const done = watchChild(missing as unknown as ChildProcess, 'pg_dump');
    missing.emit('error', new Error('spawn pg_dump ENOENT'));
    const r = await done;
    expect(r).toMatchObject({ code: null, signal: null, error: { code: 'program_not_found', message: 'cannot run pg_dump: spawn pg_dump ENOENT' } });

    const started = Object.assign(new EventEmitter(), { stderr: null, pid: 7 });
    const later = watchChild(started as unknown as ChildProcess, 'pg_restore');
    started.emit('error', new Error('EPIPE'));
    started.emit('close', null, 'SIGKILL');
    await expect(later).resolves.toMatchObject({ code: null, signal: 'SIGKILL', error: { code: 'program_not_found' } });
  });
});

describe('connection messages', () => {
  it('describeTarget shows host:port/database, never credentials', () => {
    expect(describeTarget('postgres://u:secret@db.example:6543/app')).toBe('db.example:6543/app');
    expect(describeTarget('postgres://db.example/app')).toBe('db.example:5432/app');
    expect(describeTarget('postgres://u:secret@/app')).not.toContain('secret');
    expect(describeTarget('not a url secret=x')).not.toContain('postgres://');
  });

  it.each([
    [{ code: 'ECONNREFUSED' }, 'connection refused (is the server running and listening there?)'],
    [{ code: 'ENOTFOUND' }, 'host not found'],
    [{ code: 'EAI_AGAIN' }, 'host not found'],
    [{ code: 'ETIMEDOUT' }, 'timed out'],
    [{ code: '28P01' }, 'password authentication failed'],
    [{ code: '3D000', message: 'database "x" does not exist' }, 'database "x" does not exist'],
    [{ code: '3D000' }, 'database does not exist'],
    [{ message: 'first\nsecond' }, 'first'],
    ['plain', 'plain'],
  ])('%j → %s', (err, reason) => {
    expect(connectionErrorReason(err)).toBe(reason);
  });
});

describe('restore_command quoting', () => {
  it('quotes for /bin/sh, including single quotes', () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(directoryRestoreCommand("/srv/wal o'k")).toBe(`cp '/srv/wal o'\\''k/%f' "%p"`);
  });
});

describe('pitr when questions', () => {
  it('--sql: refuses an empty query; the label is the SQL', () => {
    expect(refusal(() => sqlQuery('  '))).toMatchObject({ code: 'bad_query', exitClass: 'usage' });
    expect(sqlQuery('select 1')).toMatchObject({ question: 'changed', label: 'select 1', tables: [] });
  });

  it('--count and --row: labels and tables; a bad table name is refused before any query', () => {
    expect(countQuery('orders', undefined)).toMatchObject({ question: 'dropped', label: 'count(*) of orders', tables: ['orders'] });
    expect(countQuery('sales.orders', 'id > 5').label).toBe('count(*) of sales.orders where id > 5');
    expect(rowQuery('orders', ['1', 'a'])).toMatchObject({ question: 'reached', label: 'row orders (1, a)', tables: ['orders'] });
    expect(refusal(() => countQuery('a.b.c', undefined))).toMatchObject({ code: 'bad_table', exitClass: 'usage' });
    expect(refusal(() => rowQuery('', ['1'])).code).toBe('bad_table');
  });
});

describe('diff checksums: the arithmetic', () => {
  const plan = { segmentExpr: '"id"', segmentType: 'bigint', integerSegments: true } as Plan;
  const table = { qualified: 'public.t' } as TableInfo;

  it('sameChecksum compares count and hash sum', () => {
    expect(sameChecksum(EMPTY, { n: 0, h: 0n })).toBe(true);
    expect(sameChecksum({ n: 1, h: 5n }, { n: 1, h: 6n })).toBe(false);
    expect(sameChecksum({ n: 1, h: 5n }, { n: 2, h: 5n })).toBe(false);
  });

  it('rangePredicate appends its bounds as parameters', () => {
    const params: unknown[] = ['x'];
    expect(rangePredicate(plan, { lo: '1', hi: '9', hiInclusive: false }, params)).toBe('"id" >= $2::bigint and "id" < $3::bigint');
    expect(params).toEqual(['x', '1', '9']);
    expect(rangePredicate(plan, { lo: '1', hi: '9', hiInclusive: true }, [])).toBe('"id" >= $1::bigint and "id" <= $2::bigint');
  });

  it('integer ranges split at the midpoint without a query; a single key does not split', async () => {
    const noClient = undefined as never;
    await expect(splitRange(noClient, table, plan, { lo: '0', hi: '10', hiInclusive: false }, 0)).resolves.toEqual([
      { lo: '0', hi: '4', hiInclusive: true },
      { lo: '5', hi: '9', hiInclusive: true },
    ]);
    await expect(splitRange(noClient, table, plan, { lo: '-9223372036854775808', hi: '9223372036854775807', hiInclusive: true }, 0)).resolves.toEqual([
      { lo: '-9223372036854775808', hi: '-1', hiInclusive: true },
      { lo: '0', hi: '9223372036854775807', hiInclusive: true },
    ]);
    await expect(splitRange(noClient, table, plan, { lo: '5', hi: '6', hiInclusive: false }, 0)).resolves.toBeNull();
    await expect(splitRange(noClient, table, plan, { lo: '5', hi: '5', hiInclusive: true }, 0)).resolves.toBeNull();
  });
});

describe('a data directory\'s system identifier', () => {
  it('is the first 64 bits of global/pg_control, little-endian, as a decimal string', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pitr-sysid-'));
    try {
      mkdirSync(join(dir, 'global'));
      const control = Buffer.alloc(16);
      control.writeBigUInt64LE(7429918452115622181n, 0);
      writeFileSync(join(dir, 'global', 'pg_control'), control);
      await expect(systemIdentifierOnDisk(dir)).resolves.toBe('7429918452115622181');
      await expect(systemIdentifierOnDisk(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('server configuration and state files', () => {
  it('postgresql.conf values: strings single-quoted with quotes doubled, others bare', () => {
    expect(confValue("it's")).toBe(`'it''s'`);
    expect(confValue(5432)).toBe('5432');
    expect(confValue(false)).toBe('false');
    expect(renderConf({ a: 'x', b: 1 })).toBe(`a = 'x'\nb = 1\n`);
  });

  it('a scratch instance listens on loopback TCP only; the caller may add or override settings', () => {
    expect(scratchInstanceConf(6000)).toBe(`listen_addresses = '127.0.0.1'\nport = 6000\nunix_socket_directories = ''\n`);
    expect(scratchInstanceConf(6000, { ...NO_DURABILITY, port: 6001 })).toBe(`listen_addresses = '127.0.0.1'\nport = 6001\nunix_socket_directories = ''\nfsync = 'off'\nsynchronous_commit = 'off'\n`);
  });

  it('serverPid: a live pid from postmaster.pid; stale, garbage or missing files say no server', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pitr-pid-'));
    try {
      await expect(serverPid(dir)).resolves.toBeUndefined();
      writeFileSync(join(dir, 'postmaster.pid'), `${process.pid}\n${dir}\n1700000000\n5432\n`);
      await expect(serverPid(dir)).resolves.toBe(process.pid);
      writeFileSync(join(dir, 'postmaster.pid'), 'garbage\n');
      await expect(serverPid(dir)).resolves.toBeUndefined();
      writeFileSync(join(dir, 'postmaster.pid'), '2147483646\n');
      await expect(serverPid(dir)).resolves.toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('logReason: the last FATAL or PANIC, else ERROR, else the last line, ignoring turned-away clients', async () => {
    const log = [
      'LOG:  starting PostgreSQL 15',
      'ERROR:  relation "x" does not exist',
      'FATAL:  could not map anonymous shared memory: Cannot allocate memory',
      'FATAL:  the database system is starting up',
    ].join('\n');
    expect(logReason(log)).toBe('could not map anonymous shared memory: Cannot allocate memory');
    expect(logReason('LOG:  a\nERROR:  syntax error at or near "x"\nLOG:  b')).toBe('syntax error at or near "x"');
    expect(logReason('LOG:  only this\n')).toBe('LOG:  only this');
    expect(logReason('')).toBe('no log output');
    await expect(serverLogReason('/nonexistent/pitr.log')).resolves.toBe('no log output');
  });
});
