import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { PitrError } from '../errors.js';
import { connect } from '../db/connect.js';
import type { PostgresBinaries } from '../system/postgres-binaries.js';
import { ensureServerDir } from '../system/process.js';
import { logReason, renderConf, serverPid, startServer, stopServer, writeServerFile } from '../system/postgres-server.js';
import type { BackupInfo } from '../providers/local/backups.js';
import { discardInstance, prepareInstance } from '../providers/local/recovery.js';
import type { ProgressSink } from '../providers/types.js';
import type { Micros, NextCommit } from './bisect.js';
import { microsToPointInTime, microsToPostgres, parsePostgresMicros } from './instants.js';

export interface LocalProbeSettings {
  bin: PostgresBinaries;
  backups: readonly BackupInfo[];
  restoreCommand: string;
  /** A directory of pitr's work dir for the one instance; removed by close(). */
  dir: string;
  port: number;
  /** Production's credentials on the instance's loopback port. */
  url: string;
  timeoutMs: number;
  onProgress?: ProgressSink;
}

type State = { kind: 'none' } | { kind: 'paused'; at: Micros; nextCommit: NextCommit | null } | { kind: 'promoted' };

/**
 * One recovery instance reused for every probe: it replays forward (a later
 * recovery_target_time and a restart; recovery pauses at each target) and is restored anew
 * from the base backup only when a probe goes back in time.
 */
export class LocalProbeSession {
  private state: State = { kind: 'none' };
  /** Moves and reads one at a time: an advance in the background and a probe share the instance. */
  private queue: Promise<unknown> = Promise.resolve();
  restores = 0;
  forwardReplays = 0;

  constructor(private readonly s: LocalProbeSettings) {}

  private get dataDir(): string {
    return join(this.s.dir, 'data');
  }

  private get logFile(): string {
    return join(this.s.dir, 'probe.log');
  }

  /** Brings the instance to the state at `at` and runs `read` on it. */
  at<T>(at: Micros, read: (client: pg.Client) => Promise<T>): Promise<{ value: T; nextCommit: NextCommit | null }> {
    return this.serially(async () => {
      const nextCommit = await this.moveTo(at);
      const client = await connect(this.s.url, { timeoutMs: 5000, driver: 'pg' });
      try {
        return { value: await read(client), nextCommit };
      } finally {
        await client.end().catch(() => undefined);
      }
    });
  }

  /** Where the instance is paused, if it is. */
  get pausedAt(): Micros | null {
    return this.state.kind === 'paused' ? this.state.at : null;
  }

  /**
   * Replays forward to `at` without reading, so that a later probe at or after it starts from
   * there: the caller overlaps replay with other work. Never goes back (no restore); a failure
   * throws the instance away, and the next probe restores anew.
   */
  advance(at: Micros): Promise<void> {
    return this.serially(async () => {
      if (this.state.kind !== 'paused' || at <= this.state.at) return;
      await this.moveTo(at).catch(async (err: unknown) => {
        await this.discardData().catch(() => undefined);
        throw err;
      });
    });
  }

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async moveTo(at: Micros): Promise<NextCommit | null> {
    const target = microsToPointInTime(at);
    // Already there (an advance went ahead of this probe): nothing to replay.
    if (this.state.kind === 'paused' && at === this.state.at) return this.state.nextCommit;
    if (this.state.kind === 'paused' && at > this.state.at) {
      this.forwardReplays++;
      this.s.onProgress?.({ phase: 'replay', message: `replaying forward to ${microsToPostgres(at)}` });
      await this.stopKeepingReplay();
      await writeServerFile(join(this.dataDir, 'postgresql.auto.conf'), renderConf({ recovery_target_time: microsToPostgres(at) }), true);
    } else {
      const backup = [...this.s.backups].reverse().find((b) => new Date(b.endedAt).getTime() * 1000 <= at);
      if (!backup) throw new PitrError('target_before_backups', `${microsToPostgres(at)} is before the oldest base backup (${this.s.backups[0]?.endedAt ?? 'none'})`, { exit: 'usage' });
      this.restores++;
      this.s.onProgress?.({ phase: 'restore', message: `restoring base backup ${backup.id} for ${microsToPostgres(at)}` });
      await this.discardData();
      await ensureServerDir(this.s.dir, 0o755);
      await prepareInstance({
        bin: this.s.bin,
        backup,
        target: target,
        dataDir: this.dataDir,
        logFile: this.logFile,
        port: this.s.port,
        restoreCommand: this.s.restoreCommand,
        url: this.s.url,
        explainShortArchive: async () => null,
        timeoutMs: this.s.timeoutMs,
      });
      // Later lines win: pause at each target so the next probe can replay on from there. The
      // instance is thrown away after the probes, so its restartpoints need not reach the disk.
      await writeServerFile(join(this.dataDir, 'postgresql.auto.conf'), renderConf({ recovery_target_action: 'pause', fsync: 'off' }), true);
    }
    const logStart = await readFile(this.logFile, 'utf8').then((t) => t.length, () => 0);
    const outcome = await this.waitPaused();
    const log = (await readFile(this.logFile, 'utf8').catch(() => '')).slice(logStart);
    if (outcome === 'died') {
      if (/recovery ended before configured recovery target was reached/.test(log)) {
        // No commit after `at` in the archive: the state at `at` is the archive's end.
        await writeServerFile(join(this.dataDir, 'postgresql.auto.conf'), renderConf({ recovery_target_time: '' }), true);
        if ((await this.waitPaused()) !== 'promoted') throw new PitrError('recovery_failed', `probe recovery failed: ${logReason(await readFile(this.logFile, 'utf8').catch(() => ''))}`);
        this.state = { kind: 'promoted' };
        return null;
      }
      throw new PitrError('recovery_failed', `probe recovery to ${microsToPostgres(at)} failed: ${logReason(log)}`, { detail: log });
    }
    const stop = /recovery stopping before commit of transaction (\d+), time (.+)$/m.exec(log);
    const nextCommit = stop ? { xid: stop[1]!, at: parsePostgresMicros(stop[2]!.trim()) } : null;
    this.state = outcome === 'paused' ? { kind: 'paused', at, nextCommit } : { kind: 'promoted' };
    return nextCommit;
  }

  /** Starts the server and waits until recovery pauses at its target (or promotes, or dies). */
  private async waitPaused(): Promise<'paused' | 'promoted' | 'died'> {
    try {
      await startServer(this.s.bin, this.dataDir, this.logFile, 0, false);
    } catch (err) {
      if (err instanceof PitrError && err.code === 'server_start_failed') return 'died';
      throw err;
    }
    const deadline = Date.now() + this.s.timeoutMs;
    const launched = Date.now();
    let seenAlive = false;
    let client: pg.Client | undefined;
    try {
      for (;;) {
        if (await serverPid(this.dataDir)) seenAlive = true;
        else if (seenAlive || Date.now() - launched > 15_000) return 'died';
        if (Date.now() > deadline) throw new PitrError('recovery_timeout', 'a probe did not reach its target within the timeout (raise --timeout)');
        if (!client) client = await connect(this.s.url, { timeoutMs: 2000, driver: 'pg' }).catch(() => undefined);
        if (client) {
          const row = await client
            .query<{ r: boolean; p: string | null }>(`select pg_is_in_recovery() as r, case when pg_is_in_recovery() then pg_get_wal_replay_pause_state() end as p`)
            .then((q) => q.rows[0])
            .catch(() => undefined);
          if (!row) {
            await client.end().catch(() => undefined);
            client = undefined;
          } else if (!row.r) return 'promoted';
          else if (row.p === 'paused') return 'paused';
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await client?.end().catch(() => undefined);
    }
  }

  /**
   * Stops the paused instance so that its restart replays on from here rather than from the base
   * backup. A fast shutdown does that (its restartpoint) but waits up to a second: the paused
   * startup process notices the request only on its next one-second wake-up. A CHECKPOINT (the
   * same restartpoint) and an immediate stop take a fraction of that; the restart is then a
   * standby's crash recovery from that restartpoint. Without the right to CHECKPOINT, the fast way.
   */
  private async stopKeepingReplay(): Promise<void> {
    const client = await connect(this.s.url, { timeoutMs: 5000, driver: 'pg' }).catch(() => undefined);
    const restartpoint = client ? await client.query('checkpoint').then(() => true, () => false) : false;
    await client?.end().catch(() => undefined);
    await stopServer(this.s.bin, this.dataDir, restartpoint ? 'immediate' : 'fast');
  }

  private async discardData(): Promise<void> {
    if (await serverPid(this.dataDir)) await stopServer(this.s.bin, this.dataDir, 'immediate');
    await rm(this.dataDir, { recursive: true, force: true });
    this.state = { kind: 'none' };
  }

  /** Stops the instance and removes its directory: nothing is left behind. */
  async close(): Promise<void> {
    await discardInstance(this.s.bin, this.dataDir, this.s.dir);
  }
}
