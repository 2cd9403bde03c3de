import { describe, expect, it } from 'vitest';
import { pickShape } from '../../src/providers/local/metadata-shape.js';

describe('pickShape reads the metadata files pitr writes', () => {
  const fields = { id: 'string', port: 'number', expiresAt: 'string|null', mode: ['target', 'end-of-archive'] } as const;

  it('keeps declared fields that fit and drops the rest', () => {
    expect(pickShape({ id: 'lb-1', port: 5433, expiresAt: null, mode: 'target', extra: 1 }, fields)).toEqual({ id: 'lb-1', port: 5433, expiresAt: null, mode: 'target' });
  });

  it.each([
    ['a missing field', { port: 5433, expiresAt: null, mode: 'target' }],
    ['a wrong type', { id: 'lb-1', port: '5433', expiresAt: null, mode: 'target' }],
    ['a value outside the choices', { id: 'lb-1', port: 5433, expiresAt: null, mode: 'later' }],
    ['null where null is not allowed', { id: null, port: 5433, expiresAt: null, mode: 'target' }],
    ['not a number', { id: 'lb-1', port: Number.NaN, expiresAt: null, mode: 'target' }],
    ['not an object', ['lb-1']],
  ])('rejects %s', (_label, value) => {
    expect(pickShape(value, fields)).toBeUndefined();
  });

  it('optional fields: absent is fine (with its default), present must fit', () => {
    expect(pickShape({ id: 'x' }, { id: 'string' }, { purpose: 'string' }, { purpose: 'recovery' })).toEqual({ id: 'x', purpose: 'recovery' });
    expect(pickShape({ id: 'x', method: 'copy' }, { id: 'string' }, { method: ['pg_basebackup', 'copy'] })).toEqual({ id: 'x', method: 'copy' });
    expect(pickShape({ id: 'x', method: 'rsync' }, { id: 'string' }, { method: ['pg_basebackup', 'copy'] })).toBeUndefined();
  });
});
