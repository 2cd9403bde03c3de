import { join } from 'node:path';
import { PitrError } from '../errors.js';
import { redactSecrets } from '../redact.js';
import type { ExportStore } from './store/index.js';

export const MiB = 1024 * 1024;
export const PROGRESS_EVERY_MS = 200;
/** Export names: what file names and S3 keys both take without quoting. */
export const EXPORT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$/;

/** Printable path or URL of an object in a store. */
export function objectPath(store: ExportStore, key: string): string {
  return store.kind === 'dir' ? join(store.location, key) : `${store.location}/${key}`;
}

export function isCode(err: unknown, code: string): boolean {
  return err instanceof PitrError && err.code === code;
}

export function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return redactSecrets(text.split('\n').find((l) => l.trim())?.trim() ?? 'unknown error');
}

/** Stops before work starts when the run was already interrupted; `what` says what was (not) done. */
export function throwIfAborted(signal: AbortSignal | undefined, what = 'interrupted'): void {
  if (signal?.aborted) throw new PitrError('interrupted', what);
}

export const mib = (bytes: number) => (bytes / MiB).toFixed(1);
export const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;
