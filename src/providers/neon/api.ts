import { createApiClient, type Api } from '@neondatabase/api-client';
import type { AxiosResponse } from 'axios';
import { PitrError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import { registerSecret } from '../../redact.js';

export interface NeonApiOptions {
  apiKey: string;
  /** API base URL, e.g. https://console.neon.tech/api/v2 (a proxy or a test fake otherwise). */
  apiHost?: string;
  httpTimeoutMs?: number;
  /** Tries per request for 423/429/5xx before giving up. */
  maxAttempts?: number;
  logger?: Logger;
  /** Injected in tests to keep backoff fast. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  signal?: AbortSignal;
}

export const DEFAULT_API_HOST = 'https://console.neon.tech/api/v2';

/**
 * A refused or failed Neon API call: a PitrError that also keeps the HTTP status and Neon's own
 * message, so a caller can tell "this account has no such feature" (404/403/405/501) from a
 * real failure without parsing the one-line message.
 */
export class NeonApiError extends PitrError {
  constructor(
    code: string,
    message: string,
    readonly status: number | undefined,
    readonly neonMessage: string,
  ) {
    super(code, message);
    this.name = 'PitrError';
  }
}

interface HttpFailure {
  status?: number;
  message: string;
  retryAfterMs?: number;
  code?: string;
}

function failureOf(err: unknown): HttpFailure {
  const e = err as { response?: { status: number; data?: { message?: string; code?: string }; headers?: Record<string, unknown> }; code?: string; message?: string };
  if (e?.response) {
    const retryAfter = e.response.headers?.['retry-after'];
    return {
      status: e.response.status,
      message: e.response.data?.message || `HTTP ${e.response.status}`,
      ...(e.response.data?.code ? { code: e.response.data.code } : {}),
      ...(retryAfter !== undefined ? { retryAfterMs: parseRetryAfter(String(retryAfter)) } : {}),
    };
  }
  // Never keep the axios error itself: its config carries the Authorization header.
  return { message: e?.code === 'ECONNABORTED' || /timeout/i.test(e?.message ?? '') ? 'timed out' : (e?.code ?? e?.message ?? 'network error') };
}

/** Retry-After is seconds or an HTTP date. */
export function parseRetryAfter(value: string, now = Date.now()): number | undefined {
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * The Neon API behind one small retry policy: 423 (another operation holds the project) and
 * 429 (rate limit, Retry-After honoured) are always safe to retry; 5xx is retried for reads and
 * for writes the caller marks idempotent; everything else becomes a one-line PitrError.
 */
export class NeonApi {
  readonly client: Api<unknown>;
  private readonly log: Logger;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly maxAttempts: number;

  constructor(private readonly options: NeonApiOptions) {
    registerSecret(options.apiKey);
    this.client = createApiClient({
      apiKey: options.apiKey,
      baseURL: options.apiHost ?? DEFAULT_API_HOST,
      timeout: options.httpTimeoutMs ?? 30_000,
      headers: { 'User-Agent': 'pitr' },
    });
    this.log = options.logger ?? silentLogger;
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.random = options.random ?? Math.random;
    this.maxAttempts = options.maxAttempts ?? 6;
  }

  /**
   * Runs one API call. `what` names it for messages ("create branch pitr-main-…").
   * `retryServerErrors` is false for writes that could apply twice; `beforeRetry` lets such a
   * write check whether its first attempt took effect after all.
   */
  async call<T>(
    what: string,
    fn: (api: Api<unknown>) => Promise<AxiosResponse<T>>,
    options: { retryServerErrors?: boolean; beforeRetry?: () => Promise<T | undefined> } = {},
  ): Promise<T> {
    const retryServerErrors = options.retryServerErrors ?? true;
    let last: HttpFailure | undefined;
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      if (this.options.signal?.aborted) throw new PitrError('interrupted', `interrupted during ${what}`);
      if (attempt > 1 && options.beforeRetry) {
        const done = await options.beforeRetry();
        if (done !== undefined) return done;
      }
      try {
        return (await fn(this.client)).data;
      } catch (err) {
        last = failureOf(err);
        // 501 (not implemented) is an answer, not a hiccup: asking again cannot change it.
        const serverError = last.status !== undefined && last.status >= 500 && last.status !== 501;
        const retryable =
          last.status === 423 || last.status === 429 || (serverError && (retryServerErrors || last.status === 503)) || (last.status === undefined && retryServerErrors);
        this.log.debug({ what, attempt, status: last.status, message: last.message }, 'Neon API call failed');
        if (!retryable || attempt === this.maxAttempts) break;
        // Exponential backoff with full jitter; a server's Retry-After wins when it asks for longer.
        const backoff = Math.min(4000, 250 * 2 ** (attempt - 1)) * (0.5 + this.random() / 2);
        await this.sleep(Math.max(backoff, last.retryAfterMs ?? 0));
      }
    }
    throw this.toError(what, last!);
  }

  private toError(what: string, f: HttpFailure): NeonApiError {
    const [code, message] = this.describe(what, f);
    return new NeonApiError(code, message, f.status, f.message);
  }

  private describe(what: string, f: HttpFailure): [string, string] {
    const tries = `after ${this.maxAttempts} tries`;
    switch (true) {
      case f.status === 401:
        return ['neon_auth', `Neon rejected the API key (401) during ${what}: check NEON_API_KEY`];
      case f.status === 403:
        return ['neon_forbidden', `Neon refused ${what} (403): the API key lacks access (${f.message})`];
      case f.status === 404:
        return ['neon_not_found', `${what}: not found (404): ${f.message}`];
      case f.status === 423:
        return ['neon_locked', `${what}: the project is still locked by another operation (423) ${tries}; try again when it finishes`];
      case f.status === 429:
        return ['neon_rate_limited', `${what}: Neon's rate limit (429) ${tries}; wait a minute and try again`];
      case f.status === 501:
        return ['neon_not_supported', `${what}: Neon does not support this here (501): ${f.message}`];
      case f.status !== undefined && f.status >= 500:
        return ['neon_unavailable', `${what}: the Neon API failed (${f.status}: ${f.message}) ${tries}`];
      case f.status !== undefined:
        return ['neon_rejected', `${what}: Neon rejected the request (${f.status}): ${f.message}`];
      default:
        return ['neon_unreachable', `${what}: the Neon API is unreachable (${f.message})`];
    }
  }
}
