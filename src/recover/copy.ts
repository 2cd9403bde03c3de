import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';

/** Streams the result of `select` on one server into `table (columns)` on another: COPY to COPY, nothing held in memory. */
export async function copyBetween(source: pg.ClientBase, select: string, target: pg.ClientBase, table: string, columns: string): Promise<number> {
  const out = source.query(copyTo(`copy (${select}) to stdout`));
  const into = target.query(copyFrom(`copy ${table} (${columns}) from stdin`));
  await pipeline(out, into);
  return Number(into.rowCount ?? 0);
}

/** Writes a query's rows to a file in COPY text format, fsynced: undo data must survive a crash. */
export async function copyToFile(client: pg.ClientBase, select: string, path: string): Promise<number> {
  const out = client.query(copyTo(`copy (${select}) to stdout`));
  await pipeline(out, createWriteStream(path));
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  return Number(out.rowCount ?? 0);
}

export async function copyFromFile(client: pg.ClientBase, path: string, table: string, columns: string): Promise<number> {
  const into = client.query(copyFrom(`copy ${table} (${columns}) from stdin`));
  await pipeline(createReadStream(path), into);
  return Number(into.rowCount ?? 0);
}
