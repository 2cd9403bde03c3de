/**
 * Finding one export and authenticating its manifest: what `export restore`, `export list` and
 * `export:` branches share. The manifest must name the dump it sits next to: a manifest copied
 * from another export (same key, so its HMAC is valid) is refused before a byte of the dump is
 * read, instead of only failing the hash comparison at the very end.
 */
import { badInput, PitrError } from '../errors.js';
import { redactSecrets } from '../redact.js';
import { DUMP_SUFFIX, MANIFEST_SUFFIX, openManifest, type ExportManifest } from './manifest.js';
import { openExportStore, splitObjectUrl, type ExportStore, type ExportStoreOptions } from './store/index.js';
import { isCode, objectPath } from './common.js';

export interface ExportRef {
  /** The directory or s3:// prefix holding the export. */
  location: string;
  /** The export name: the object keys without their suffixes. */
  name: string;
  dumpKey: string;
  manifestKey: string;
}

/** `<location>/<name>`, `<location>/<name>.dump.enc` or `<location>/<name>.manifest.json`. */
export function parseExportRef(object: string): ExportRef {
  const { location, key } = splitObjectUrl(object);
  const name = key.endsWith(DUMP_SUFFIX) ? key.slice(0, -DUMP_SUFFIX.length) : key.endsWith(MANIFEST_SUFFIX) ? key.slice(0, -MANIFEST_SUFFIX.length) : key;
  if (!name) throw badInput('bad_export_location', `"${redactSecrets(object)}" does not name an export`);
  return { location, name, dumpKey: name + DUMP_SUFFIX, manifestKey: name + MANIFEST_SUFFIX };
}

/** The printable object of an export (`<location>/<name>`): what `export:` and `export restore` take. */
export function exportObjectOf(ref: Pick<ExportRef, 'location' | 'name'>): string {
  return `${ref.location.replace(/\/$/, '')}/${ref.name}`;
}

/**
 * Reads and authenticates `<name>.manifest.json`, and checks it belongs to this export (its
 * name and dump object). Errors are one line, exit 1.
 */
export async function readExportManifest(store: ExportStore, ref: ExportRef, masterKey: Buffer): Promise<ExportManifest> {
  let text: Buffer;
  try {
    text = await store.readSmall(ref.manifestKey);
  } catch (err) {
    if (!isCode(err, 'export_not_found')) throw err;
    throw new PitrError(
      'export_incomplete',
      `no manifest ${ref.manifestKey} in ${store.location}: the export did not finish (the manifest is written last), or the name is wrong (see pitr export list --to ${store.location})`,
      { cause: err },
    );
  }
  const manifest = openManifest(text, masterKey, objectPath(store, ref.manifestKey));
  checkManifestNamesObject(manifest, ref, objectPath(store, ref.manifestKey));
  return manifest;
}

/** A valid manifest of another export, copied or renamed next to this dump, is refused. */
export function checkManifestNamesObject(manifest: ExportManifest, ref: Pick<ExportRef, 'name' | 'dumpKey'>, where: string): void {
  if (manifest.name !== ref.name || manifest.dump.object !== ref.dumpKey) {
    throw new PitrError(
      'export_manifest_mismatch',
      `${where} belongs to export ${manifest.name} (dump ${manifest.dump.object}), not to ${ref.name}: a manifest was swapped or renamed`,
      { exit: 'failure' },
    );
  }
}

/** Opens the store of an export; the caller closes it. */
export function openExportOf(object: string, storeOptions: ExportStoreOptions = {}): { ref: ExportRef; store: ExportStore } {
  const ref = parseExportRef(object);
  return { ref, store: openExportStore(ref.location, storeOptions) };
}
