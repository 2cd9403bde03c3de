// src/migrate: a schema migration guarded by a snapshot taken just before it.
// Core: must not import src/cli; it runs the user's migration command and reaches production only
// through the Provider interface.
import { spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { badInput } from '../errors.js';
import type { ProgressSink, Provider, Snapshot } from '../providers/types.js';

export interface GuardedMigration {
  snapshot: Snapshot;
  command: string[];
  /** The migration's exit code (128 + n when a signal ended it, 127 when it could not start). */
  exitCode: number;
  signal: string | null;
  seconds: number;
  /** Set when the command could not be started at all. */
  startError: string | null;
}

export interface GuardedMigrationRequest {
  provider: Provider;
  snapshotName: string;
  command: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  stdout: Writable;
  stderr: Writable;
  onProgress?: ProgressSink;
}

/**
 * Takes a restore point, then runs the migration with its output streamed through. The restore
 * point comes first and must succeed: a migration that runs without one is exactly the
 * incident this guards against.
 */
export async function runGuardedMigration(req: GuardedMigrationRequest): Promise<GuardedMigration> {
  if (req.command.length === 0) throw badInput('missing_command', 'give the migration command after --, e.g. pitr migrate -- npx drizzle-kit migrate');
  const snapshot = await req.provider.createSnapshot(req.snapshotName, { ...(req.onProgress && { onProgress: req.onProgress }) });
  req.onProgress?.({ phase: 'migrate', message: `restore point ${snapshot.name} taken; running ${req.command.join(' ')}` });
  const started = Date.now();
  const outcome = await new Promise<{ code: number; signal: string | null; startError: string | null }>((resolve) => {
    const child = spawn(req.command[0]!, req.command.slice(1), { cwd: req.cwd, env: req.env, stdio: ['inherit', 'pipe', 'pipe'] });
    child.stdout.pipe(req.stdout, { end: false });
    child.stderr.pipe(req.stderr, { end: false });
    child.once('error', (err: NodeJS.ErrnoException) => resolve({ code: err.code === 'ENOENT' ? 127 : 126, signal: null, startError: `${req.command[0]}: ${err.code === 'ENOENT' ? 'command not found' : err.message}` }));
    child.once('close', (code, signal) => resolve({ code: code ?? 128 + (signal ? signalNumber(signal) : 0), signal, startError: null }));
  });
  return { snapshot, command: req.command, exitCode: outcome.code, signal: outcome.signal, seconds: (Date.now() - started) / 1000, startError: outcome.startError };
}

function signalNumber(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
  return numbers[signal] ?? 0;
}
