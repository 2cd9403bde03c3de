import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { badInput } from '../errors.js';
import { registerSecret } from '../redact.js';
import { ENCRYPTION_KEY_ENV, KEY_BYTES } from './encryption-format.js';

// ---------------------------------------------------------------------------------------------
// Keys

/**
 * The master key from PITR_ENCRYPTION_KEY (`env`, the variable's value) or a key file (`file`, a
 * path). Either holds 64 hex characters or the base64 of 32 bytes; surrounding whitespace is
 * ignored. A key file wins over the environment, as flags do. Every form of the key is registered
 * with the redactor so no log line can show it.
 */
export function loadEncryptionKey(source: { env?: string | undefined; file?: string | undefined }): Buffer {
  let raw: string;
  let origin: string;
  if (source.file !== undefined && source.file !== '') {
    origin = `key file ${source.file}`;
    try {
      raw = readFileSync(source.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'read error';
      throw badInput('bad_encryption_key', `cannot read ${origin} (${code})`);
    }
  } else if (source.env !== undefined && source.env !== '') {
    origin = ENCRYPTION_KEY_ENV;
    raw = source.env;
  } else {
    throw badInput('bad_encryption_key', `no encryption key: set ${ENCRYPTION_KEY_ENV} or pass --key-file (generate one with: openssl rand -hex 32)`);
  }
  registerSecret(raw);
  const text = raw.trim();
  registerSecret(text);
  const key = parseKey(text);
  if (!key) {
    throw badInput('bad_encryption_key', `the encryption key in ${origin} is not 64 hex characters or the base64 of 32 bytes`);
  }
  registerKeyForms(key);
  return key;
}

/** A new random master key as 64 hex characters. */
export function generateEncryptionKey(): string {
  return randomBytes(KEY_BYTES).toString('hex');
}

function parseKey(text: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  // Standard or URL-safe base64, padding optional: 32 bytes are 43 significant characters.
  const unpadded = text.replace(/=+$/, '');
  if (text.length - unpadded.length <= 2 && /^[A-Za-z0-9+/_-]{43}$/.test(unpadded)) {
    const key = Buffer.from(unpadded, 'base64');
    if (key.length === KEY_BYTES) return key;
  }
  return undefined;
}

function registerKeyForms(key: Buffer): void {
  const hex = key.toString('hex');
  registerSecret(hex);
  registerSecret(hex.toUpperCase());
  const b64 = key.toString('base64');
  registerSecret(b64);
  registerSecret(b64.replace(/=+$/, ''));
  registerSecret(key.toString('base64url'));
}
