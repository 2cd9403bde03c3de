import { afterAll, afterEach, beforeAll } from 'vitest';
import { setupServer } from 'msw/node';
import type { Branch } from '@neondatabase/api-client';
import { NeonLookup, type NeonSettings } from '../../src/providers/neon/lookup.js';

/** Unit tests of the Neon provider's decisions against msw handlers (no fake state: each test answers). */
export const HOST = 'http://neon.test/api/v2';

/** An msw server for this test file: listening for its tests, handlers reset after each. */
export function neonMswServer(): ReturnType<typeof setupServer> {
  const server = setupServer();
  beforeAll(() => server.listen({ onUnhandledRequest: 'error' }));
  afterEach(() => server.resetHandlers());
  afterAll(() => server.close());
  return server;
}

export const lookup = (over: Partial<NeonSettings> = {}) =>
  new NeonLookup({ apiKey: 'napi_unit_test_key', apiHost: HOST, maxAttempts: 1, projectId: 'p1', operationTimeoutMs: 1000, ...over });

export const branch = (id: string, name: string, over: Partial<Branch> = {}) =>
  ({ id, name, project_id: 'p1', created_at: '2026-11-25T10:00:00Z', updated_at: '2026-11-25T10:00:00Z', current_state: 'ready', default: false, protected: false, ...over }) as Branch;
