import { afterEach, describe, expect, it } from 'vitest';
import { refusal as rejected } from '../support/refusal.js';
import { parsePostgresUrl } from '../../src/db/postgres-url.js';
import { branchUrl, connectionParts } from '../../src/providers/local/urls.js';

describe('parsePostgresUrl', () => {
  it('accepts postgres:// and postgresql://', () => {
    expect(parsePostgresUrl('postgres://u@h/db').hostname).toBe('h');
    expect(parsePostgresUrl('postgresql://u@h/db').hostname).toBe('h');
  });

  it('refuses other schemes and non-URLs as usage errors without echoing the URL (it may hold a password)', () => {
    const scheme = rejected(() => parsePostgresUrl('mysql://u:hunter2@h/db'));
    expect([scheme.code, scheme.exitCode]).toEqual(['bad_database_url', 2]);
    expect(scheme.message).toContain('(got mysql://)');
    expect(scheme.message).not.toContain('hunter2');
    const garbage = rejected(() => parsePostgresUrl('hunter2 not a url'));
    expect(garbage.code).toBe('bad_database_url');
    expect(garbage.message).not.toContain('hunter2');
  });
});

describe('connectionParts', () => {
  const saved = process.env.PGUSER;
  afterEach(() => {
    if (saved === undefined) delete process.env.PGUSER;
    else process.env.PGUSER = saved;
  });

  it('takes the password out of the URL (argv is visible in ps) and decodes it', () => {
    const parts = connectionParts('postgres://app%40prod:p%40ss%2Fw0rd@db.example:6543/sales?sslmode=require');
    expect(parts).toEqual({ url: 'postgres://app%40prod@db.example:6543/sales?sslmode=require', password: 'p@ss/w0rd', user: 'app@prod', database: 'sales' });
  });

  it('defaults like libpq: user from PGUSER else postgres, database named after the user', () => {
    process.env.PGUSER = 'ops';
    expect(connectionParts('postgres://h')).toMatchObject({ user: 'ops', database: 'postgres', password: undefined });
    delete process.env.PGUSER;
    expect(connectionParts('postgres://h')).toMatchObject({ user: 'postgres', database: 'postgres' });
    expect(connectionParts('postgres://alice@h')).toMatchObject({ user: 'alice', database: 'alice' });
    expect(connectionParts('postgres://alice@h/My%20DB').database).toBe('My DB');
  });
});

describe('branchUrl', () => {
  it("keeps production's credentials and database, on loopback at the instance's port", () => {
    expect(branchUrl('postgres://app:secret@db.example:5432/sales?application_name=x', 6001)).toBe('postgres://app:secret@127.0.0.1:6001/sales?application_name=x');
  });

  it('drops TLS and host-routing options, which would point elsewhere or fail against a loopback instance with ssl off', () => {
    const url = new URL(branchUrl('postgresql://app@db/sales?sslmode=verify-full&sslrootcert=/ca.pem&host=/var/run&hostaddr=10.0.0.1&port=7&target_session_attrs=read-write&connect_timeout=5', 6001));
    expect([...url.searchParams.keys()]).toEqual(['connect_timeout']);
    expect(url.host).toBe('127.0.0.1:6001');
  });
});
