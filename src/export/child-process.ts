import type { ChildProcess } from 'node:child_process';
import { PitrError } from '../errors.js';
import { redactSecrets } from '../redact.js';
import { oneLine } from './common.js';

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last 64 KiB of stderr. */
  stderr: string;
  /** Spawning failed (program missing). */
  error?: PitrError;
}

export function watchChild(child: ChildProcess, program: string): Promise<ChildExit> {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    if (stderr.length > 128 * 1024) stderr = stderr.slice(-64 * 1024);
  });
  return new Promise((resolve) => {
    let spawnError: PitrError | undefined;
    child.once('error', (err) => {
      spawnError = new PitrError('program_not_found', `cannot run ${program}: ${oneLine(err)}`, { cause: err });
      if (child.pid === undefined) resolve({ code: null, signal: null, stderr, error: spawnError });
    });
    child.once('close', (code, signal) => resolve({ code, signal, stderr, ...(spawnError && { error: spawnError }) }));
  });
}

/** A tool's message without its `pg_dump: error:` prefix, on one line. */
export function stripToolPrefix(line: string, tool: string): string {
  return line.replace(new RegExp(`^${tool}:\\s*(error:\\s*|warning:\\s*)?`, 'i'), '').replace(/\s+/g, ' ').trim();
}

/** pg_restore's first error, one line: the statement that failed and why. */
export function firstRestoreError(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim());
  const first = lines.find((l) => /\berror:/i.test(l)) ?? lines.find(Boolean) ?? 'no output';
  return redactSecrets(stripToolPrefix(first, 'pg_restore'));
}
