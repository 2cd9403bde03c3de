import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { NeonApi, parseRetryAfter } from '../../src/providers/neon/api.js';
import { PitrError } from '../../src/errors.js';

const HOST = 'http://neon.test/api/v2';
const server = setupServer();
beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
afterEach(() => server.resetHandlers());
afterAll(() => server.close());

function api(sleeps: number[] = []) {
  return new NeonApi({ apiKey: 'napi_unit_test_key', apiHost: HOST, maxAttempts: 4, sleep: async (ms) => void sleeps.push(ms), random: () => 1, httpTimeoutMs: 500 });
}

/** Answers the listed statuses in order, then 200. */
function sequence(statuses: { status: number; headers?: Record<string, string> }[]) {
  let i = 0;
  server.use(
    http.get(`${HOST}/projects/p1`, ({ request }) => {
      expect(request.headers.get('authorization')).toBe('Bearer napi_unit_test_key');
      const next = statuses[i++];
      if (!next) return HttpResponse.json({ project: { id: 'p1' } });
      return HttpResponse.json({ code: '', message: `status ${next.status}` }, { status: next.status, ...(next.headers && { headers: next.headers }) });
    }),
  );
  return () => i;
}

describe('Neon API retry policy', () => {
  it('retries 423 with backoff and succeeds', async () => {
    const sleeps: number[] = [];
    const calls = sequence([{ status: 423 }, { status: 423 }]);
    const res = await api(sleeps).call('get project', (c) => c.getProject('p1'));
    expect(res.project.id).toBe('p1');
    expect(calls()).toBe(3);
    expect(sleeps).toEqual([250, 500]);
  });

  it('honours Retry-After on 429', async () => {
    const sleeps: number[] = [];
    sequence([{ status: 429, headers: { 'Retry-After': '3' } }]);
    await api(sleeps).call('get project', (c) => c.getProject('p1'));
    expect(sleeps).toEqual([3000]);
  });

  it('gives up on 5xx after the bounded number of tries with a one-line error', async () => {
    const calls = sequence([{ status: 500 }, { status: 502 }, { status: 503 }, { status: 500 }, { status: 500 }]);
    const err = (await api().call('get project', (c) => c.getProject('p1')).catch((e: unknown) => e)) as PitrError;
    expect(err).toBeInstanceOf(PitrError);
    expect(err.code).toBe('neon_unavailable');
    expect(err.message).toBe('get project: the Neon API failed (500: status 500) after 4 tries');
    expect(calls()).toBe(4);
  });

  it('does not retry 5xx for writes that are not idempotent, except 503', async () => {
    let calls = 0;
    server.use(http.delete(`${HOST}/projects/p1/branches/b1`, () => (calls++, HttpResponse.json({ code: '', message: 'boom' }, { status: 500 }))));
    const err = (await api().call('delete branch', (c) => c.deleteProjectBranch({ projectId: 'p1', branchId: 'b1' }), { retryServerErrors: false }).catch((e: unknown) => e)) as PitrError;
    expect(err.code).toBe('neon_unavailable');
    expect(calls).toBe(1);
  });

  it.each([
    [401, 'neon_auth', 'Neon rejected the API key (401) during get project: check NEON_API_KEY'],
    [404, 'neon_not_found', 'get project: not found (404): status 404'],
    [400, 'neon_rejected', 'get project: Neon rejected the request (400): status 400'],
  ])('maps %i to %s without retrying', async (status, code, message) => {
    const calls = sequence([{ status }, { status }, { status }, { status }]);
    const err = (await api().call('get project', (c) => c.getProject('p1')).catch((e: unknown) => e)) as PitrError;
    expect(err.code).toBe(code);
    expect(err.message).toBe(message);
    expect(calls()).toBe(1);
  });

  it('a hung request times out and says so, without the API key', async () => {
    server.use(http.get(`${HOST}/projects/p1`, () => new Promise<Response>(() => undefined)));
    const err = (await api().call('get project', (c) => c.getProject('p1')).catch((e: unknown) => e)) as PitrError;
    expect(err.code).toBe('neon_unreachable');
    expect(err.message).toContain('timed out');
    expect(JSON.stringify(err)).not.toContain('napi_unit_test_key');
  });

  it('parses Retry-After as seconds or a date', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4000)).toBe(6000);
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});
