/**
 * The manifest of an encrypted export: `<name>.manifest.json`, written after `<name>.dump.enc`
 * is complete, so its presence means the export finished. It records what was dumped (source,
 * target, server and pg_dump versions, per-table row counts taken in the dump's own snapshot)
 * and how to check the dump (sizes and SHA-256 of the plaintext and of the ciphertext).
 *
 * It is authenticated with an HMAC-SHA256 keyed from the master key (HKDF-SHA256 with its own
 * info string, so the MAC key is independent of every file's data key) over a canonical form
 * of the document: sorted keys, no whitespace, the `hmac` field itself left out. A changed
 * manifest is reported as tampered; a manifest made with another key as a wrong key (the key id,
 * derived the same way with another info string, tells the two apart and names no secret).
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { PitrError } from '../errors.js';

export const MANIFEST_FORMAT = 'pitr-export';
export const MANIFEST_VERSION = 1;
export const DUMP_SUFFIX = '.dump.enc';
export const MANIFEST_SUFFIX = '.manifest.json';

const MAC_INFO = 'pitr export manifest v1';
const KEY_ID_INFO = 'pitr export key id v1';

const tableSchema = z.strictObject({ schema: z.string(), name: z.string(), rows: z.number().int().min(0) });

export const manifestSchema = z.strictObject({
  format: z.literal(MANIFEST_FORMAT),
  version: z.literal(MANIFEST_VERSION),
  name: z.string().min(1),
  createdAt: z.string(),
  /** Where the data came from, for people; redacted (never a password). */
  source: z.string(),
  database: z.string(),
  /** The state that was exported: an ISO instant, `lsn:X/Y`, `snapshot:<name>`, or null for the current state. */
  target: z.string().nullable(),
  /** The branch the target was resolved to, when it differs from `target` (a snapshot's LSN or time). */
  resolvedTarget: z.string().nullable(),
  /** True when pg_dump and the row counts read one exported snapshot (exact counts). */
  consistent: z.boolean(),
  server: z.strictObject({ version: z.string(), versionNum: z.number().int() }),
  pgDump: z.strictObject({ version: z.string(), major: z.number().int() }),
  tool: z.strictObject({ name: z.literal('pitr'), version: z.string() }),
  dump: z.strictObject({
    object: z.string(),
    format: z.literal('custom'),
    bytes: z.number().int().min(0),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    encryptedBytes: z.number().int().min(0),
    encryptedSha256: z.string().regex(/^[0-9a-f]{64}$/),
    chunkBytes: z.number().int().min(1),
    cipher: z.literal('aes-256-gcm'),
  }),
  key: z.strictObject({ id: z.string().regex(/^[0-9a-f]{16}$/), kdf: z.literal('hkdf-sha256') }),
  tables: z.array(tableSchema),
  seconds: z.number().min(0),
  hmac: z.string().regex(/^hmac-sha256:[0-9a-f]{64}$/),
});

export type ExportManifest = z.infer<typeof manifestSchema>;
export type ManifestTable = z.infer<typeof tableSchema>;
export type UnsignedManifest = Omit<ExportManifest, 'hmac'>;

/** A short public fingerprint of the master key: tells "wrong key" from "modified manifest". */
export function keyId(masterKey: Buffer): string {
  return Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), KEY_ID_INFO, 8)).toString('hex');
}

function macKey(masterKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), MAC_INFO, 32));
}

/** JSON with object keys sorted at every level and no whitespace: the bytes the HMAC covers. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

function mac(masterKey: Buffer, body: unknown): Buffer {
  const key = macKey(masterKey);
  try {
    return createHmac('sha256', key).update(canonicalJson(body)).digest();
  } finally {
    key.fill(0);
  }
}

/** The manifest with its HMAC, as the text stored next to the dump. */
export function signManifest(manifest: UnsignedManifest, masterKey: Buffer): { manifest: ExportManifest; text: string } {
  const signed: ExportManifest = { ...manifest, hmac: `hmac-sha256:${mac(masterKey, manifest).toString('hex')}` };
  return { manifest: signed, text: JSON.stringify(signed, null, 2) + '\n' };
}

function failure(code: string, message: string): PitrError {
  return new PitrError(code, message, { exit: 'failure' });
}

/**
 * Parses and authenticates a stored manifest. Errors (exit 1): export_manifest_invalid (not a
 * pitr manifest, or an unknown version), export_wrong_key, export_manifest_tampered.
 */
export function openManifest(text: Buffer | string, masterKey: Buffer, where: string): ExportManifest {
  let data: unknown;
  try {
    data = JSON.parse(typeof text === 'string' ? text : text.toString('utf8'));
  } catch {
    throw failure('export_manifest_invalid', `${where} is not valid JSON: the manifest is damaged`);
  }
  const head = data as { format?: unknown; version?: unknown } | null;
  if (!head || typeof head !== 'object' || head.format !== MANIFEST_FORMAT) {
    throw failure('export_manifest_invalid', `${where} is not a pitr export manifest`);
  }
  if (head.version !== MANIFEST_VERSION) {
    throw failure('export_manifest_invalid', `${where} has manifest version ${String(head.version)}; this pitr reads version ${MANIFEST_VERSION} (upgrade pitr)`);
  }
  const parsed = manifestSchema.safeParse(data);
  if (!parsed.success) {
    // A field of the wrong shape is a modification as much as a changed value is.
    const issue = parsed.error.issues[0]!;
    throw failure('export_manifest_tampered', `${where} was modified or damaged (field ${issue.path.join('.') || '(top level)'}: ${issue.message})`);
  }
  const manifest = parsed.data;
  const { hmac, ...body } = manifest;
  const expected = mac(masterKey, body);
  const given = Buffer.from(hmac.slice('hmac-sha256:'.length), 'hex');
  if (given.length === expected.length && timingSafeEqual(given, expected)) return manifest;
  const ours = keyId(masterKey);
  if (manifest.key.id !== ours) {
    throw failure('export_wrong_key', `wrong encryption key: this export was made with key id ${manifest.key.id}, the key given has id ${ours}`);
  }
  throw failure('export_manifest_tampered', `${where} was modified after the export was made (its HMAC does not match)`);
}
