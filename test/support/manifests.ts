import { keyId, type UnsignedManifest } from '../../src/export/manifest.js';

/** A complete unsigned export manifest for unit tests; `master` decides the key id it records. */
export function unsigned(name: string, over: Partial<UnsignedManifest> = {}, master: Buffer): UnsignedManifest {
  return {
    format: 'pitr-export',
    version: 1,
    name,
    createdAt: '2026-11-25T14:03:00.000Z',
    source: 'postgres://app@127.0.0.1:5432/app',
    database: 'app',
    target: null,
    resolvedTarget: null,
    consistent: true,
    server: { version: '15.8', versionNum: 150008 },
    pgDump: { version: '15.8', major: 15 },
    tool: { name: 'pitr', version: '0.1.0' },
    dump: {
      object: `${name}.dump.enc`,
      format: 'custom',
      bytes: 10,
      sha256: 'a'.repeat(64),
      encryptedBytes: 40,
      encryptedSha256: 'b'.repeat(64),
      chunkBytes: 65536,
      cipher: 'aes-256-gcm',
    },
    key: { id: keyId(master), kdf: 'hkdf-sha256' },
    tables: [
      { schema: 'public', name: 'orders', rows: 3 },
      { schema: 'public', name: 'items', rows: 4 },
    ],
    seconds: 1.5,
    ...over,
  };
}
