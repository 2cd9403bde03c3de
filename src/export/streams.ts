import { createHash } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { Transform, Writable, type TransformCallback } from 'node:stream';

/**
 * The end of a restore pipeline: writes into a child's stdin with backpressure. If the pipeline
 * fails, the child is killed (SIGKILL) before its stdin closes, so a `pg_restore
 * --single-transaction` never sees a clean end of input and can never commit a partial restore.
 */
export class ChildSink extends Writable {
  private gone: Error | undefined;

  constructor(private readonly child: ChildProcess, private readonly program: string) {
    super({ highWaterMark: 1 << 20 });
    const stdin = child.stdin!;
    stdin.on('error', (err) => {
      this.gone ??= new Error(`${program} stopped reading its input (${err.message})`);
    });
    child.once('exit', () => {
      this.gone ??= new Error(`${program} exited before reading all of its input`);
    });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const stdin = this.child.stdin!;
    if (this.gone || stdin.destroyed) {
      callback(this.gone ?? new Error(`${this.program} stopped reading its input`));
      return;
    }
    if (stdin.write(chunk)) {
      callback();
      return;
    }
    const done = () => {
      stdin.off('drain', done);
      stdin.off('close', done);
      stdin.off('error', done);
      this.child.off('exit', done);
      callback(this.gone ?? null);
    };
    stdin.on('drain', done);
    stdin.on('close', done);
    stdin.on('error', done);
    this.child.on('exit', done);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.child.stdin!.end(() => callback());
  }

  override _destroy(err: Error | null, callback: (error: Error | null) => void): void {
    if (err && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    this.child.stdin?.destroy();
    callback(err);
  }
}

/**
 * Passes chunks through one behind, and lets `check` veto the end: the consumer never receives
 * the last chunk (which holds the archive's end) until the whole object has been authenticated
 * and compared with its manifest.
 */
export class HoldLastChunk extends Transform {
  private held: Buffer | undefined;

  constructor(private readonly check: () => void | Promise<void>) {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const previous = this.held;
    this.held = chunk;
    callback(null, previous);
  }

  override _flush(callback: TransformCallback): void {
    Promise.resolve()
      .then(() => this.check())
      .then(
        () => callback(null, this.held),
        (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
      );
  }
}

/**
 * Writes every chunk to the stdin of each child still reading, waiting for each to drain;
 * a child that stops reading (pg_restore --list after the TOC) is simply left out from then on,
 * so the whole object is still read and authenticated.
 */
export class ChildFanOut extends Writable {
  private readonly open = new Set<Writable>();
  private flushed = false;

  constructor(children: ChildProcess[]) {
    super({ highWaterMark: 1 << 20 });
    for (const child of children) {
      const stdin = child.stdin;
      if (!stdin) continue;
      this.open.add(stdin);
      const gone = () => this.open.delete(stdin);
      stdin.on('error', gone); // EPIPE once the child stopped reading
      stdin.on('close', gone);
      child.on('exit', gone);
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const waits: Promise<void>[] = [];
    for (const stdin of this.open) {
      if (stdin.destroyed || !stdin.writable) {
        this.open.delete(stdin);
        continue;
      }
      if (!stdin.write(chunk)) {
        waits.push(
          new Promise<void>((resolve) => {
            const done = () => {
              stdin.off('drain', done);
              stdin.off('close', done);
              stdin.off('error', done);
              resolve();
            };
            stdin.on('drain', done);
            stdin.on('close', done);
            stdin.on('error', done);
          }),
        );
      }
    }
    if (waits.length === 0) callback();
    else void Promise.all(waits).then(() => callback());
  }

  /**
   * Ends every child's stdin and finishes only once each has handed all its bytes to the pipe:
   * a stdin destroyed with writes still queued (a reader busy restoring keeps the pipe full)
   * would drop the end of the stream, and pg_restore reports "end of file".
   */
  override _final(callback: (error?: Error | null) => void): void {
    const flushed = [...this.open].map(
      (stdin) =>
        new Promise<void>((resolve) => {
          if (stdin.destroyed || stdin.writableFinished) return resolve();
          stdin.once('finish', resolve);
          stdin.once('close', resolve);
          stdin.once('error', () => resolve()); // the child stopped reading: it is left out, as in _write
          stdin.end();
        }),
    );
    void Promise.all(flushed).then(() => {
      this.flushed = true;
      callback();
    });
  }

  /** Destroyed before the end (an error, an abort) every stdin goes; after it they are flushed already. */
  override _destroy(err: Error | null, callback: (error: Error | null) => void): void {
    if (!this.flushed) for (const stdin of this.open) stdin.destroy();
    this.open.clear();
    callback(err);
  }
}

/** Passes bytes through, counting them and hashing them (SHA-256); `beforeEnd` may veto the end. */
export class HashTap extends Transform {
  bytes = 0;
  onBytes: ((bytes: number) => void) | undefined;
  beforeEnd: (() => Promise<void>) | undefined;
  private readonly hash = createHash('sha256');
  private digest: string | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (!this.beforeEnd) {
      callback();
      return;
    }
    this.beforeEnd().then(
      () => callback(),
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
    );
  }

  hex(): string {
    return (this.digest ??= this.hash.digest('hex'));
  }
}
