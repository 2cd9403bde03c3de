/**
 * `pitr export list --to <dir|s3://…>`: the exports at a location, newest first, each with what
 * its manifest says and whether that manifest authenticates with the key given. Only manifests
 * are read (small), never the dumps.
 */
import { PitrError } from '../errors.js';
import { DUMP_SUFFIX, MANIFEST_SUFFIX, openManifest, type ExportManifest } from './manifest.js';
import { checkManifestNamesObject, exportObjectOf } from './open.js';
import { openExportStore, type ExportObject, type ExportStore, type ExportStoreOptions } from './store/index.js';
import { objectPath, oneLine } from './common.js';

export interface ListedExport {
  name: string;
  /** What `export restore` and `export:` take. */
  object: string;
  /** Manifest createdAt, else the dump's modification time. */
  createdAt: string;
  source: string | null;
  database: string | null;
  /** The exported state (null: the state at createdAt). */
  target: string | null;
  /** Bytes of the encrypted dump as stored (null: no dump). */
  bytes: number | null;
  pgDump: string | null;
  server: string | null;
  tables: number | null;
  rows: number | null;
  keyId: string | null;
  /** True: the manifest authenticates with the key and names this dump; null: no key was given. */
  authenticated: boolean | null;
  /** Why not usable: no manifest, no dump, wrong key, tampered, swapped. */
  problem: string | null;
  manifest: ExportManifest | null;
}

export async function listExports(location: string, masterKey: Buffer | undefined, storeOptions: ExportStoreOptions = {}): Promise<{ location: string; exports: ListedExport[] }> {
  const store = openExportStore(location, storeOptions);
  try {
    return { location: store.location, exports: await listIn(store, masterKey) };
  } finally {
    store.close();
  }
}

export async function listIn(store: ExportStore, masterKey: Buffer | undefined): Promise<ListedExport[]> {
  const objects = await store.list();
  const byName = new Map<string, { dump?: ExportObject; manifest?: ExportObject }>();
  for (const o of objects) {
    const suffix = o.key.endsWith(DUMP_SUFFIX) ? DUMP_SUFFIX : o.key.endsWith(MANIFEST_SUFFIX) ? MANIFEST_SUFFIX : null;
    if (!suffix) continue;
    const name = o.key.slice(0, -suffix.length);
    const entry = byName.get(name) ?? {};
    if (suffix === DUMP_SUFFIX) entry.dump = o;
    else entry.manifest = o;
    byName.set(name, entry);
  }
  const out: ListedExport[] = [];
  for (const [name, found] of byName) out.push(await describeOne(store, name, found, masterKey));
  return out.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || a.name.localeCompare(b.name));
}

async function describeOne(store: ExportStore, name: string, found: { dump?: ExportObject; manifest?: ExportObject }, masterKey: Buffer | undefined): Promise<ListedExport> {
  const listed: ListedExport = {
    name,
    object: exportObjectOf({ location: store.location, name }),
    createdAt: (found.dump ?? found.manifest)!.modified.toISOString(),
    source: null,
    database: null,
    target: null,
    bytes: found.dump?.bytes ?? null,
    pgDump: null,
    server: null,
    tables: null,
    rows: null,
    keyId: null,
    authenticated: masterKey ? false : null,
    problem: null,
    manifest: null,
  };
  if (!found.manifest) {
    listed.problem = 'no manifest: the export did not finish';
    return listed;
  }
  const where = objectPath(store, name + MANIFEST_SUFFIX);
  let text: Buffer;
  try {
    text = await store.readSmall(name + MANIFEST_SUFFIX);
  } catch (err) {
    listed.problem = `cannot read the manifest: ${oneLine(err)}`;
    return listed;
  }
  // Without a key the fields are shown as stored (unauthenticated); with one, only if it authenticates.
  let manifest: ExportManifest | undefined;
  try {
    if (masterKey) {
      manifest = openManifest(text, masterKey, where);
      checkManifestNamesObject(manifest, { name, dumpKey: name + DUMP_SUFFIX }, where);
      listed.authenticated = true;
    } else {
      manifest = JSON.parse(text.toString('utf8')) as ExportManifest;
    }
  } catch (err) {
    listed.problem = err instanceof PitrError ? err.message : `unreadable manifest: ${oneLine(err)}`;
    try {
      manifest = JSON.parse(text.toString('utf8')) as ExportManifest;
    } catch {
      return listed;
    }
  }
  if (manifest && typeof manifest === 'object') fill(listed, manifest);
  if (!found.dump && !listed.problem) listed.problem = `the dump ${name + DUMP_SUFFIX} is missing`;
  return listed;
}

function fill(listed: ListedExport, m: Partial<ExportManifest>): void {
  if (typeof m.createdAt === 'string') listed.createdAt = m.createdAt;
  listed.source = typeof m.source === 'string' ? m.source : null;
  listed.database = typeof m.database === 'string' ? m.database : null;
  listed.target = typeof m.target === 'string' ? m.target : null;
  listed.pgDump = m.pgDump?.version ?? null;
  listed.server = m.server?.version ?? null;
  listed.tables = Array.isArray(m.tables) ? m.tables.length : null;
  listed.rows = Array.isArray(m.tables) ? m.tables.reduce((a, t) => a + (Number(t?.rows) || 0), 0) : null;
  listed.keyId = m.key?.id ?? null;
  if (listed.authenticated) listed.manifest = m as ExportManifest;
}
