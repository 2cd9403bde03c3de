import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { currentDriver } from '../db/connect.js';

/**
 * Bulk row movement. Over TCP (`--driver pg`) it is COPY to COPY, streamed. Neon's WebSocket
 * driver cannot run COPY … TO STDOUT, so with `--driver ws` rows move in batches through a
 * server-side cursor as JSON (row_to_json → json_populate_recordset): slower, same result,
 * memory bounded by the batch. Files written in one mode carry their format in their name.
 */
const BATCH = 5000;
let cursorSeq = 0;

/** COPY needs the TCP driver: Neon's WebSocket driver cannot stream COPY … TO STDOUT. */
export const useCopy = () => currentDriver().driver !== 'ws';

/** fsyncs a file and the directory that names it: a crash after this keeps both. */
async function syncFile(path: string): Promise<void> {
  for (const p of [path, dirname(path)]) {
    const handle = await open(p, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

/** Runs `select` through a cursor (inside the caller's transaction), a batch of JSON rows at a time. */
async function forEachBatch(client: pg.ClientBase, select: string, onBatch: (rows: string[]) => Promise<void>): Promise<number> {
  const cursor = `pitr_cursor_${++cursorSeq}`;
  await client.query(`declare ${cursor} no scroll cursor for select row_to_json(x)::text as j from (${select}) x`);
  let total = 0;
  try {
    for (;;) {
      const { rows } = await client.query(`fetch ${BATCH} from ${cursor}`);
      if (rows.length === 0) break;
      total += rows.length;
      await onBatch(rows.map((r) => r.j as string));
    }
  } finally {
    await client.query(`close ${cursor}`).catch(() => undefined);
  }
  return total;
}

async function insertJson(client: pg.ClientBase, table: string, columns: string, rows: string[]): Promise<void> {
  await client.query(`insert into ${table} (${columns}) select ${columns} from json_populate_recordset(null::${table}, $1::json)`, [`[${rows.join(',')}]`]);
}

/** Streams the result of `select` on one server into `table (columns)` on another. */
export async function copyBetween(source: pg.ClientBase, select: string, target: pg.ClientBase, table: string, columns: string, binary = false): Promise<number> {
  if (!useCopy()) return forEachBatch(source, select, (rows) => insertJson(target, table, columns, rows));
  // Binary only where the caller knows both ends have the same types: no printing and parsing of values.
  const format = binary ? ' (format binary)' : '';
  const out = source.query(copyTo(`copy (${select}) to stdout${format}`));
  const into = target.query(copyFrom(`copy ${table} (${columns}) from stdin${format}`));
  await pipeline(out, into);
  return Number(into.rowCount ?? 0);
}

/** Writes a query's rows to a file, fsynced: undo data must survive a crash. Returns the file's path. */
export async function copyToFile(client: pg.ClientBase, select: string, base: string): Promise<string> {
  if (!useCopy()) {
    const path = `${base}.ndjson`;
    const file = createWriteStream(path);
    await forEachBatch(client, select, async (rows) => {
      if (!file.write(rows.join('\n') + '\n')) await new Promise<void>((r) => file.once('drain', () => r()));
    });
    await new Promise<void>((resolve, reject) => file.end((err?: Error | null) => (err ? reject(err) : resolve())));
    await syncFile(path);
    return path;
  }
  const path = `${base}.copy`;
  await pipeline(client.query(copyTo(`copy (${select}) to stdout`)), createWriteStream(path));
  await syncFile(path);
  return path;
}

/** Loads a file written by copyToFile (either format) into `table (columns)`. */
export async function copyFromFile(client: pg.ClientBase, base: string, table: string, columns: string): Promise<number> {
  const { access } = await import('node:fs/promises');
  const json = await access(`${base}.ndjson`).then(
    () => true,
    () => false,
  );
  if (json) {
    let batch: string[] = [];
    let total = 0;
    for await (const line of createInterface({ input: createReadStream(`${base}.ndjson`) })) {
      if (!line) continue;
      batch.push(line);
      if (batch.length >= BATCH) {
        await insertJson(client, table, columns, batch);
        total += batch.length;
        batch = [];
      }
    }
    if (batch.length) await insertJson(client, table, columns, batch);
    return total + batch.length;
  }
  if (!useCopy()) throw new Error(`${base}.copy was written over TCP (COPY); load it with --driver pg`);
  const into = client.query(copyFrom(`copy ${table} (${columns}) from stdin`));
  await pipeline(createReadStream(`${base}.copy`), into);
  return Number(into.rowCount ?? 0);
}
