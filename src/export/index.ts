// src/export: encrypted exports of a database state (pg_dump), their verification, listing, pruning and restore.
// Core: it must not import src/cli (no console output, no process.exit); it reaches databases through
// src/db, programs through src/system, and production only through the Provider interface.
/**
 * Encrypted exports: `pg_dump -Fc` of a chosen state of production, streamed through the
 * chunked AES-256-GCM format (./encryption.ts) into a directory or an S3 prefix (./store/),
 * with an authenticated manifest (./manifest.ts); and their verification, up to a full restore
 * into a throw-away cluster with per-table row counts compared to the manifest.
 *
 *   pg_dump stdout → sha256/bytes of the plaintext → encrypt → sha256/bytes of the ciphertext → store
 *
 * Consistency: pitr opens a REPEATABLE READ transaction on the source, exports its snapshot and
 * runs `pg_dump --snapshot=<id>`, so the dump and the manifest's exact row counts (counted in that
 * transaction while pg_dump runs) describe one and the same state. The transaction stays open
 * until pg_dump has finished.
 *
 * Secrets: pg_dump and pg_restore get their connection in libpq environment variables, never on
 * the command line (which anyone can read in `ps`). Memory stays flat whatever the dump's size:
 * every stage streams, at most one encryption chunk (1 MiB) is held per direction, plus the
 * store's upload buffers for S3.
 *
 * No console output here: progress goes to `onProgress`, failures are one-line PitrErrors.
 */

export { EXPORT_NAME, objectPath } from './common.js';
export { runExport, type ExportOptions, type ExportResult } from './dump.js';
export type { ExportManifest, ManifestTable } from './manifest.js';
export { DUMP_SUFFIX, MANIFEST_SUFFIX } from './manifest.js';
export { exportFromProvider, type ProviderExportOptions } from './source.js';
export { countDifferences } from './table-counts.js';
export { verifyExport, type VerifyOptions, type VerifyResult } from './verify.js';
