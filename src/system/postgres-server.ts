import { constants } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PitrError } from '../errors.js';
import { isRoot, lastMeaningfulLine, postgresOsUser, run, runChecked, serverEnvironment } from './process.js';
import type { PostgresBinaries } from './postgres-binaries.js';

/** Quote a value for postgresql.conf: single quotes, embedded quotes doubled. */
export function confValue(value: string | number | boolean): string {
  if (typeof value !== 'string') return String(value);
  return `'${value.replace(/'/g, "''")}'`;
}

export function renderConf(settings: Record<string, string | number | boolean>): string {
  return Object.entries(settings)
    .map(([k, v]) => `${k} = ${confValue(v)}\n`)
    .join('');
}

/**
 * postgresql.conf of a scratch instance pitr starts itself (a test or verify cluster, an export
 * branch): TCP on loopback at `port` only, no Unix socket, then the caller's settings.
 */
export function scratchInstanceConf(port: number, settings: Record<string, string | number | boolean> = {}): string {
  return renderConf({ listen_addresses: '127.0.0.1', port, unix_socket_directories: '', ...settings });
}

/** For copies that can be made again: a crash may lose them, so durability buys nothing. */
export const NO_DURABILITY = { fsync: 'off', synchronous_commit: 'off' } as const;

/**
 * Writes a file inside a data directory, never through a symlink. The postgres OS user owns the
 * directory and could plant one (`postgresql.auto.conf -> /etc/shadow`): as root the write is
 * done by that user itself (dd, oflag=nofollow), so a symlink gains it nothing; otherwise
 * pitr is that user and opens the file with O_NOFOLLOW.
 */
export async function writeServerFile(path: string, content: string, append = false): Promise<void> {
  if (isRoot()) {
    await postgresOsUser();
    const flags = append ? ['oflag=append,nofollow', 'conv=notrunc'] : ['oflag=nofollow'];
    const result = await run('sh', ['-c', 'umask 077 && exec dd "$@"', 'dd', `of=${path}`, ...flags, 'status=none'], { asServerUser: true, input: content });
    if (result.code !== 0) throw new PitrError('unsafe_data_dir', `cannot write ${path} as the postgres user (a symlink there?): ${lastMeaningfulLine(result.stderr)}`);
    return;
  }
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (append ? constants.O_APPEND : constants.O_TRUNC), 0o600).catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'ELOOP' ? new PitrError('unsafe_data_dir', `refusing to write ${path}: it is a symlink`) : err;
  });
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
}

/** Removes a file from a data directory as its owner (a symlinked parent gains nothing). */
export async function removeServerFile(path: string): Promise<void> {
  await runChecked('rm', ['-f', '--', path], { asServerUser: true, what: `removing ${path}` });
}

/** initdb; with `passwordFile` every login needs the password in it (SCRAM), otherwise trust. */
export async function initCluster(bin: PostgresBinaries, dataDir: string, options: { noSync?: boolean; passwordFile?: string; env?: NodeJS.ProcessEnv } = {}): Promise<void> {
  const auth = options.passwordFile ? ['--auth=scram-sha-256', `--pwfile=${options.passwordFile}`] : ['--auth=trust'];
  await runChecked(bin.path('initdb'), ['-D', dataDir, '-U', 'postgres', ...auth, '-E', 'UTF8', '--locale=C.UTF-8', ...(options.noSync ? ['--no-sync'] : [])], {
    asServerUser: true,
    what: 'initdb',
    code: 'initdb_failed',
    ...(options.env && { env: options.env }),
  });
}

/**
 * Starts a server with pg_ctl. `pg_ctl -w` returns once connections are accepted, which for a
 * server in archive recovery means hot standby, not "recovery finished": callers that restore
 * must keep polling (see waitForPromotion).
 */
export async function startServer(bin: PostgresBinaries, dataDir: string, logFile: string, timeoutSeconds = 600, wait = true, env: NodeJS.ProcessEnv = serverEnvironment()): Promise<void> {
  const waitArgs = wait ? ['-w', '-t', String(timeoutSeconds)] : ['-W'];
  const result = await run(bin.path('pg_ctl'), ['-D', dataDir, '-l', logFile, ...waitArgs, 'start'], {
    asServerUser: true,
    // The postmaster, and every archive/restore command it runs, inherits this.
    env,
    // The postmaster inherits pg_ctl's stdio; keep none of our pipes so it never holds us up.
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  if (result.code !== 0) {
    throw new PitrError('server_start_failed', `the Postgres server did not start: ${await serverLogReason(logFile)}`, {
      detail: await readFile(logFile, 'utf8').catch(() => ''),
    });
  }
}

export async function stopServer(bin: PostgresBinaries, dataDir: string, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  if (!(await serverPid(dataDir))) return;
  const result = await run(bin.path('pg_ctl'), ['-D', dataDir, '-m', mode, '-w', '-t', '60', 'stop'], { asServerUser: true });
  if (result.code !== 0 && (await serverPid(dataDir))) {
    // Last resort: the postmaster ignored pg_ctl; never leave a stray server behind.
    const pid = await serverPid(dataDir);
    if (pid) process.kill(pid, 'SIGQUIT');
  }
}

/** The postmaster's pid when it is alive, else undefined (stale postmaster.pid files are ignored). */
export async function serverPid(dataDir: string): Promise<number | undefined> {
  const text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = Number(text?.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return (await processAlive(pid)) ? pid : undefined;
}

/**
 * True for a running process. A zombie (exited, not yet reaped: common in containers whose init
 * does not reap daemonised postmasters) counts as gone.
 */
export async function processAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return process.platform !== 'linux';
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** The most telling FATAL/PANIC/ERROR line of a server log, for one-line error messages. */
export async function serverLogReason(logFile: string): Promise<string> {
  const log = await readFile(logFile, 'utf8').catch(() => '');
  return logReason(log);
}

/**
 * FATALs a server logs about a client it turned away (our own polling included) while it starts
 * or stops. They say nothing about why the server itself failed.
 */
const CONNECTION_REJECTIONS =
  /the database system is (starting up|in recovery mode|shutting down|not yet accepting connections|not accepting connections)|Consistent recovery state has not been yet reached|terminating connection|connection to client lost|authentication failed|no pg_hba\.conf entry|(database|role) "[^"]*" does not exist/;

export function logReason(log: string): string {
  const lines = log.split('\n').filter((l) => !CONNECTION_REJECTIONS.test(l));
  const pick = (re: RegExp) => [...lines].reverse().find((l) => re.test(l));
  const line = pick(/\b(FATAL|PANIC):/) ?? pick(/\bERROR:/) ?? lines.filter(Boolean).at(-1) ?? 'no log output';
  return line.replace(/^.*?\b(FATAL|PANIC|ERROR):\s*/, '').trim();
}
