import { randomBytes, randomInt } from 'node:crypto';

/** Ids shaped like Neon's (`br-<adjective>-<noun>-<suffix>`), which neonctl-style parsers recognise. */
const ADJECTIVES = ['proud', 'misty', 'quiet', 'bold', 'calm', 'dry', 'wild', 'cool', 'dark', 'snowy', 'young', 'plain'];
const NOUNS = ['fog', 'river', 'leaf', 'moon', 'sun', 'hill', 'wave', 'star', 'field', 'tree', 'cloud', 'stone'];
const ALPHANUMERIC = 'abcdefghijklmnopqrstuvwxyz0123456789';

export function neonId(prefix: 'br' | 'ep' | 'snap'): string {
  const suffix = Array.from({ length: 8 }, () => ALPHANUMERIC[randomInt(ALPHANUMERIC.length)]).join('');
  return `${prefix}-${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${NOUNS[randomInt(NOUNS.length)]}-${suffix}`;
}

/** Neon role passwords look like `npg_` + 12 characters; tests look for it to check redaction. */
export function neonPassword(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return `npg_${Array.from(randomBytes(12), (b) => alphabet[b % alphabet.length]).join('')}`;
}
