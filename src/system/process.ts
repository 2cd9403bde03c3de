// src/system: processes, local Postgres clusters, server and client binaries, loopback ports.
// Low layer: must not import providers, feature folders or src/cli; only src/errors.ts,
// src/redact.ts and each other.
import { spawn, type SpawnOptions } from 'node:child_process';
import { chmod, chown, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PitrError } from '../errors.js';
import { redactSecrets } from '../redact.js';

/**
 * Postgres server programs refuse to run as root. When pitr itself runs as root (CI, containers,
 * ops boxes) every server-side program and every file it must own goes through the `postgres`
 * OS user, the way the Debian packaging does it.
 */
export const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

interface OsUser {
  uid: number;
  gid: number;
}
let postgresUser: Promise<OsUser> | undefined;

export function postgresOsUser(): Promise<OsUser> {
  postgresUser ??= (async () => {
    const passwd = await readFile('/etc/passwd', 'utf8');
    for (const line of passwd.split('\n')) {
      const [name, , uid, gid] = line.split(':');
      if (name === 'postgres' && uid && gid) return { uid: Number(uid), gid: Number(gid) };
    }
    throw new PitrError(
      'no_postgres_user',
      'running as root, but there is no "postgres" OS user to run the Postgres server as (create one, or run pitr as a non-root user)',
    );
  })();
  return postgresUser;
}

/**
 * mkdir -p, then hand the directory to the postgres user when we are root. Parents it creates
 * are private to root but passable by the postgres group (0710): pitr runs with umask 077, and
 * the server must reach its own directory through them.
 */
export async function ensureServerDir(path: string, mode = 0o700): Promise<void> {
  await ensurePassableDir(dirname(path));
  const created = await mkdir(path, { recursive: true, mode });
  if (isRoot()) {
    const { uid, gid } = await postgresOsUser();
    await chown(path, uid, gid);
  }
  if (created) await chmod(path, mode);
}

/**
 * mkdir -p for a directory on the way to one the server owns: 0700, or when pitr is root,
 * root:postgres 0710 (the postgres user may pass through, not list or read). `base` (pitr's work
 * directory) and the directories between it and `path` get the same treatment when pitr made
 * them private earlier (a run directory created before the first recovery branch).
 */
export async function ensurePassableDir(path: string, base?: string): Promise<void> {
  const first = await mkdir(path, { recursive: true, mode: 0o700 });
  if (!isRoot()) return;
  const { gid } = await postgresOsUser();
  // Up to the work directory, or higher when this call created directories above it.
  const stop = base !== undefined && first !== undefined && base.startsWith(first) ? first : (base ?? first ?? path);
  for (let dir = path; ; dir = dirname(dir)) {
    const st = await stat(dir);
    if (st.uid === 0 && (st.mode & 0o011) === 0) {
      await chown(dir, 0, gid);
      await chmod(dir, (st.mode & 0o700) | 0o010);
    }
    if (dir === stop || dirname(dir) === dir) break;
  }
}

/**
 * The environment for a throw-away cluster's programs (initdb, pg_ctl, the postmaster and what
 * it runs, pg_restore): locale, PATH and temp dir, nothing else. pitr's own environment holds
 * PITR_ENCRYPTION_KEY, AWS_*, NEON_API_KEY and DATABASE_URL; a restored dump's functions must
 * never be able to read them from the server's environment.
 */
export function minimalEnvironment(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const keep = /^(PATH|LANG|LANGUAGE|LC_[A-Z]+|TZ|TMPDIR)$/;
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (keep.test(k) && v !== undefined) env[k] = v;
  return { ...env, ...extra };
}

/**
 * The environment for a recovery instance: the user's restore_command (pgBackRest, WAL-G) may
 * need its own settings and credentials, so only what is pitr's or production's is taken out.
 */
export function serverEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // libpq's PG* settings point at production; PGBACKREST_* configure the user's restore_command.
  for (const k of Object.keys(env)) if (/^(PITR_|NEON_|PG(?!DATA$|BACKREST_))|^DATABASE_URL$/.test(k)) delete env[k];
  return env;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Run as the postgres OS user when pitr is root (server programs, files the server must own). */
  asServerUser?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Written to the child's stdin (then closed). */
  input?: string;
  /** Detach stdio of a long-lived child (a postmaster started by pg_ctl) so we do not wait on its pipes. */
  stdio?: SpawnOptions['stdio'];
}

export function commandLine(program: string, args: readonly string[], asServerUser = false): [string, string[]] {
  if (asServerUser && isRoot()) return ['runuser', ['-u', 'postgres', '--', program, ...args]];
  return [program, [...args]];
}

/** Runs a program to completion and collects its output; never throws for a non-zero exit. */
export function run(program: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [cmd, argv] = commandLine(program, args, options.asServerUser);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: options.stdio ?? [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      signal: options.signal,
    });
    if (options.input !== undefined) {
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(options.input);
    }
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let timer: NodeJS.Timeout | undefined;
    if (options.timeoutMs) {
      timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    }
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new PitrError('program_not_found', `cannot run ${program}: not found`, { cause: err }));
      } else reject(err);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/** Runs a program and turns a non-zero exit into a PitrError carrying its last stderr line. */
export async function runChecked(program: string, args: readonly string[], options: RunOptions & { what: string; code?: string } ): Promise<RunResult> {
  const result = await run(program, args, options);
  if (result.code !== 0) {
    throw new PitrError(options.code ?? 'command_failed', `${options.what} failed: ${lastMeaningfulLine(result.stderr || result.stdout)}`, {
      detail: redactSecrets(result.stderr + result.stdout),
    });
  }
  return result;
}

export function lastMeaningfulLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const errorLine = [...lines].reverse().find((l) => /error|fatal|could not|cannot/i.test(l));
  return redactSecrets(errorLine ?? lines.at(-1) ?? 'no output');
}
