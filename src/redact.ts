/**
 * Secrets must never reach a terminal, a log line, a report or --json output. Every writer in
 * pitr passes text through redactSecrets(); known secrets (API keys, passwords read from
 * settings) are registered once so they are caught even outside of URLs.
 */
const registeredSecrets = new Set<string>();

export const REDACTED = '********';

export function registerSecret(secret: string | undefined | null): void {
  // Very short values would redact ordinary words; real keys and passwords are longer.
  if (secret && secret.length >= 4) registeredSecrets.add(secret);
}

const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]+:)([^\s@/]+)@/gi;
const KEYWORD_PASSWORD = /\b(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'&]+)/gi;
const BEARER = /\b(Bearer\s+)[A-Za-z0-9._~+/=-]+/g;

export function redactSecrets(text: string): string {
  let out = text
    .replace(URL_PASSWORD, `$1${REDACTED}@`)
    .replace(KEYWORD_PASSWORD, `$1${REDACTED}`)
    .replace(BEARER, `$1${REDACTED}`);
  for (const secret of registeredSecrets) {
    if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret && out.includes(encoded)) out = out.split(encoded).join(REDACTED);
  }
  return out;
}

/** Deep copy with every string redacted; for JSON output and structured logs. */
export function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redactSecrets(value) as T;
  if (Array.isArray(value)) return value.map((v) => redactDeep(v)) as T;
  if (value instanceof Date) return value;
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = /^(password|apiKey|api_key|secret|token)$/i.test(k) && typeof v === 'string' ? REDACTED : redactDeep(v);
    }
    return out as T;
  }
  return value;
}

/** A connection URL safe to show: the password replaced, everything else kept. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = REDACTED;
    return parsed.toString();
  } catch {
    return redactSecrets(url);
  }
}
