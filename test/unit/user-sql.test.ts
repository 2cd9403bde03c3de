import { beforeAll, describe, expect, it } from 'vitest';
import { loadSqlParser, parseReadOnlyQuery, parseWhere } from '../../src/db/user-sql.js';

/** The parser gate for user SQL (issue 13, findings 1 and 3), without a database. */
describe('parseWhere', () => {
  beforeAll(() => loadSqlParser());

  it.each([
    'author_id = 7',
    "lower(title) like 'a%' and id between 1 and 9",
    "created_at > now() - interval '1 day'",
    'id in (select c.id from public.comics c where c.author_id = 7)',
    '(a, b) > (1, 2)',
    "body = 'it''s -- not a comment'",
    'x /* a block comment */ is not null',
    'exists (select 1 from public.x where x.id = t.id)',
  ])('accepts one condition: %s', (where) => {
    expect(parseWhere(`  ${where}  `)).toBe(where);
  });

  it.each([
    ['paren break-out', 'false) or true or (false', /not valid SQL/],
    ['second statement', 'true; delete from t', /one condition/],
    ['union', 'true union select 1 from t', /one condition/],
    ['order by', 'true order by 1', /one condition/],
    ['limit', 'true limit 1', /one condition/],
    ['group by', 'true group by 1', /one condition/],
    ['line comment', 'true --', /-- comment/],
    ['unterminated block comment', 'true /*', /not valid SQL/],
    ['nextval', "nextval('s') > 0", /may not call nextval/],
    ['qualified set_config', "pg_catalog.set_config('search_path', 'evil', true) is not null", /may not call pg_catalog\.set_config/],
    ['advisory lock', 'pg_advisory_lock(1) is not null', /may not call/],
    ['row lock in a subquery', 'exists (select 1 from t for update)', /row-locking/],
    ['data-modifying CTE', 'exists (with d as (delete from t returning 1) select 1 from d)', /may only read/],
    ['empty', '   ', /empty/],
  ])('refuses %s with a one-line usage error', (_what, where, message) => {
    let error: { code?: string; exitCode?: number; message?: string } | undefined;
    try {
      parseWhere(where);
    } catch (err) {
      error = err as typeof error;
    }
    expect(error).toMatchObject({ code: 'bad_where', exitCode: 2 });
    expect(error!.message).toMatch(message);
    expect(error!.message).not.toContain('\n');
  });
});

describe('parseReadOnlyQuery', () => {
  beforeAll(() => loadSqlParser());

  it('accepts one SELECT (VALUES and TABLE too) and drops a trailing semicolon', () => {
    expect(parseReadOnlyQuery('select count(*) from public.t;')).toBe('select count(*) from public.t');
    expect(parseReadOnlyQuery('values (1)')).toBe('values (1)');
    expect(parseReadOnlyQuery('table public.t')).toBe('table public.t');
  });

  it.each([
    ['select 1; commit; delete from orders; select 1', /exactly one statement/],
    ['delete from orders', /must be a SELECT \(got DELETE\)/],
    ['commit', /must be a SELECT/],
    ['select * into x from t', /SELECT INTO/],
    ['with d as (update t set a = 1 returning 1) select * from d', /may only read/],
    ["select set_config('default_transaction_read_only', 'off', false)", /may not call set_config/],
  ])('refuses %s', (sql, message) => {
    expect(() => parseReadOnlyQuery(sql)).toThrow(message);
  });
});
