import { badInput } from '../errors.js';
import { registerSecret } from '../redact.js';

/** The one parser of postgres:// URLs: a one-line usage error for anything else. */
export function parsePostgresUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw badInput('bad_database_url', 'the database URL is not a valid postgres:// URL');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw badInput('bad_database_url', `the database URL must start with postgres:// or postgresql:// (got ${parsed.protocol}//)`);
  }
  return parsed;
}

/** Registers a URL's password for redaction before anything can echo it; a bad URL is reported where it is used. */
export function registerUrlPassword(url: string): void {
  let password: string;
  try {
    password = new URL(url).password;
  } catch {
    return;
  }
  if (password) registerSecret(decodeURIComponent(password));
}
