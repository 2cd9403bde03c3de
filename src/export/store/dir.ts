import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { PitrError } from '../../errors.js';
import type { ExportObject, ExportStore, WriteOptions } from './index.js';
import { assertKey, assertPrefix } from './location.js';
import { bodyFailure, errnoCode, fsReason, mapStreamErrors, missingDir, PARTIAL_SUFFIX, SMALL_OBJECT_LIMIT, syncDir, tooLarge, toBuffer } from './shared.js';

export class DirStore implements ExportStore {
  readonly kind = 'dir' as const;
  readonly location: string;

  constructor(private readonly dir: string) {
    this.location = dir;
  }

  close(): void {}

  async write(key: string, body: Readable, options: WriteOptions = {}): Promise<{ bytes: number }> {
    assertKey(key);
    let bytes = 0;
    try {
      await this.atomicWrite(key, async (fh) => {
        const iterator = body[Symbol.asyncIterator]();
        for (;;) {
          let next: IteratorResult<unknown>;
          let chunk: Buffer;
          try {
            next = await iterator.next();
            if (next.done) break;
            chunk = toBuffer(next.value);
          } catch (err) {
            throw bodyFailure(err, key, this.location);
          }
          let off = 0;
          while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
          bytes += chunk.length;
          if (chunk.length) options.onProgress?.(bytes);
        }
      });
    } catch (err) {
      if (!body.destroyed) body.destroy();
      throw err;
    }
    return { bytes };
  }

  async writeSmall(key: string, data: string | Buffer): Promise<void> {
    assertKey(key);
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    await this.atomicWrite(key, async (fh) => {
      await fh.writeFile(buf);
    });
  }

  /** `.key.<random>.partial` → fill → fsync → rename → fsync the directory. */
  private async atomicWrite(key: string, fill: (fh: FileHandle) => Promise<void>): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true });
    } catch (err) {
      throw new PitrError('export_write_failed', `cannot create export directory ${this.dir}: ${fsReason(err)}`, { cause: err });
    }
    const temp = join(this.dir, `.${key}.${randomBytes(6).toString('hex')}${PARTIAL_SUFFIX}`);
    let fh: FileHandle;
    try {
      fh = await open(temp, 'wx', 0o600);
    } catch (err) {
      throw new PitrError('export_write_failed', `cannot write to export directory ${this.dir}: ${fsReason(err)}`, { cause: err });
    }
    let stage = 'writing';
    try {
      await fill(fh);
      stage = 'syncing';
      await fh.sync();
      await fh.close();
      stage = 'renaming';
      await rename(temp, join(this.dir, key));
    } catch (err) {
      await fh.close().catch(() => undefined);
      await rm(temp, { force: true }).catch(() => undefined);
      if (err instanceof PitrError) throw err;
      throw new PitrError('export_write_failed', `${stage} ${key} in ${this.dir} failed: ${fsReason(err)}`, { cause: err });
    }
    await syncDir(this.dir);
  }

  async read(key: string): Promise<Readable> {
    assertKey(key);
    const file = join(this.dir, key);
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
      if (!(await fh.stat()).isFile()) {
        await fh.close();
        throw Object.assign(new Error('not a file'), { code: 'ENOENT' });
      }
    } catch (err) {
      throw await this.readError(err, key);
    }
    const stream = fh.createReadStream();
    return mapStreamErrors(stream, (err) => new PitrError('export_read_failed', `reading ${file} failed: ${fsReason(err)}`, { cause: err }));
  }

  async readSmall(key: string): Promise<Buffer> {
    assertKey(key);
    const file = join(this.dir, key);
    try {
      const info = await stat(file);
      if (!info.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOENT' });
      if (info.size > SMALL_OBJECT_LIMIT) throw tooLarge(key, this.location, info.size);
      return await readFile(file);
    } catch (err) {
      if (err instanceof PitrError) throw err;
      throw await this.readError(err, key);
    }
  }

  private async readError(err: unknown, key: string): Promise<PitrError> {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') {
      const dirOk = await stat(this.dir).then((s) => s.isDirectory(), () => false);
      if (!dirOk) return missingDir(this.dir, err);
      return new PitrError('export_not_found', `no such export file ${key} in ${this.dir}`, { cause: err });
    }
    return new PitrError('export_read_failed', `reading ${join(this.dir, key)} failed: ${fsReason(err)}`, { cause: err });
  }

  async list(prefix = ''): Promise<ExportObject[]> {
    assertPrefix(prefix);
    let entries;
    try {
      entries = await readdir(this.dir, { withFileTypes: true });
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') throw missingDir(this.dir, err);
      throw new PitrError('export_read_failed', `cannot list export directory ${this.dir}: ${fsReason(err)}`, { cause: err });
    }
    const names = entries
      .filter((e) => e.isFile() && !e.name.startsWith('.') && !e.name.endsWith(PARTIAL_SUFFIX) && e.name.startsWith(prefix))
      .map((e) => e.name);
    const out: ExportObject[] = [];
    for (const name of names) {
      try {
        const info = await stat(join(this.dir, name));
        out.push({ key: name, bytes: info.size, modified: info.mtime });
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw new PitrError('export_read_failed', `cannot stat ${join(this.dir, name)}: ${fsReason(err)}`, { cause: err });
      }
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async remove(key: string): Promise<void> {
    assertKey(key);
    try {
      await rm(join(this.dir, key), { force: true });
    } catch (err) {
      throw new PitrError('export_write_failed', `cannot remove ${join(this.dir, key)}: ${fsReason(err)}`, { cause: err });
    }
    await syncDir(this.dir);
  }
}

