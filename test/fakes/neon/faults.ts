import { randomUUID } from 'node:crypto';
import type { GeneralError } from '@neondatabase/api-client';
import { HttpResponse, matchRequestUrl } from 'msw';

export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'DELETE';

export type StatusFault = { status: 400 | 401 | 404 | 409 | 423 | 429 | 500 | 502 | 503; retryAfterSeconds?: number; message?: string };
export type Fault =
  | StatusFault
  /** Never answer (until close). */
  | { hang: true }
  /** The request succeeds; its operations end 'failed' with that error. */
  | { failOperation: true; error?: string }
  /** The request succeeds; its operations stay 'running' forever. */
  | { stallOperation: true };

/** What Neon says for each status, as far as known (423's text is the one neonctl users report). */
const DEFAULT_MESSAGES: Record<StatusFault['status'], string> = {
  400: 'bad request',
  401: 'authentication failed',
  404: 'not found',
  409: 'conflict',
  423: 'project already has running conflicting operations, scheduling of new ones is prohibited',
  429: 'too many requests',
  500: 'internal server error',
  502: 'bad gateway',
  503: 'service unavailable',
};

/**
 * Faults a test queues for the next matching requests. Each inject() call is one queue (method +
 * msw path pattern, relative to the API base); a request takes the first fault of the oldest queue
 * it matches, so `[{status: 423}, {status: 423}]` fails exactly two matching requests.
 */
export class FaultBook {
  private readonly queues: { method: HttpMethod; pattern: string; faults: Fault[] }[] = [];

  constructor(private readonly apiHost: string) {}

  inject(method: HttpMethod, pattern: string, faults: Fault[]): void {
    if (!pattern.startsWith('/')) throw new Error(`fault path pattern must start with '/', relative to the API base (got ${pattern})`);
    this.queues.push({ method, pattern, faults: [...faults] });
  }

  take(method: string, url: URL): Fault | undefined {
    for (const [index, queue] of this.queues.entries()) {
      if (queue.method !== method.toUpperCase()) continue;
      if (!matchRequestUrl(url, `${this.apiHost}${queue.pattern}`).matches) continue;
      const fault = queue.faults.shift();
      if (queue.faults.length === 0) this.queues.splice(index, 1);
      return fault;
    }
    return undefined;
  }
}

export function generalError(status: number, message: string, headers?: Record<string, string>) {
  return HttpResponse.json<GeneralError>({ request_id: randomUUID(), code: '', message }, { status, ...(headers ? { headers } : {}) });
}

export function faultResponse(fault: StatusFault) {
  // 429 always carries Retry-After (clients are expected to honour it); others only when asked.
  const retryAfter = fault.retryAfterSeconds ?? (fault.status === 429 ? 1 : undefined);
  return generalError(fault.status, fault.message ?? DEFAULT_MESSAGES[fault.status], retryAfter === undefined ? undefined : { 'Retry-After': String(retryAfter) });
}
