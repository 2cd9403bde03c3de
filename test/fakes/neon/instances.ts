import { rm } from 'node:fs/promises';
import pg from 'pg';
import { LocalProvider } from '../../../src/providers/local/index.js';
import type { PointInTime } from '../../../src/time/index.js';
import type { HostPort } from './pg-proxy.js';

/**
 * Real Postgres behind the fake: every branch at a point in time is a local recovery instance
 * made by pitr's own LocalProvider (base backup + WAL replay), so a test of the Neon path reads
 * exactly the rows Postgres had at that instant, not rows a fake invented.
 */

export interface ProductionSettings {
  url: string;
  backupDir: string;
  walArchive: string;
  workDir: string;
}

export interface Instance {
  id: string;
  address: HostPort;
  /** Where replay stopped: the branch point as an LSN (Neon reports parent_lsn). */
  replayLsn: string | null;
  /** The last commit replayed: the newest instant this instance provably matches production. */
  lastCommit: Date | null;
}

const DAY_MS = 86_400_000;

export class LocalInstances {
  private readonly provider: LocalProvider;
  private readonly abort = new AbortController();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly made = new Set<string>();
  /** Time Travel instances, one per point, shared by every endpoint (Neon's are ephemeral; ours live until close). */
  private readonly timeTravel = new Map<string, Promise<Instance>>();

  constructor(
    production: ProductionSettings,
    readonly workDir: string,
  ) {
    this.provider = new LocalProvider({
      databaseUrl: production.url,
      backupDir: production.backupDir,
      walArchive: production.walArchive,
      workDir,
      archiveWaitMs: 10_000,
      recoveryTimeoutMs: 120_000,
    });
  }

  /** Restores a new instance at `at`. `name` only labels it in LocalProvider's store. */
  restore(at: PointInTime, name: string): Promise<Instance> {
    if (this.abort.signal.aborted) return Promise.reject(new Error('the fake Neon is closing'));
    const work = (async () => {
      const branch = await this.provider.createRecoveryBranch(at, { ttlMs: DAY_MS, name, signal: this.abort.signal });
      this.made.add(branch.id);
      const url = new URL(branch.connectionUrl);
      const address = { host: url.hostname, port: Number(url.port) };
      return { id: branch.id, address, ...(await replayFacts(branch.connectionUrl)) };
    })();
    this.inFlight.add(work);
    void work.catch(() => undefined).finally(() => this.inFlight.delete(work));
    return work;
  }

  /** A cached read-only-by-convention instance for Time Travel sessions at `at`. */
  timeTravelAt(at: PointInTime): Promise<HostPort> {
    if (at.kind === 'snapshot' || at.kind === 'xid') throw new Error('the fake restores times and LSNs only');
    const key = at.kind === 'lsn' ? `lsn:${at.lsn}` : `time:${at.at.getTime()}`;
    let instance = this.timeTravel.get(key);
    if (!instance) {
      instance = this.restore(at, `time-travel-${key.replace(/[^a-zA-Z0-9]+/g, '-')}`);
      this.timeTravel.set(key, instance);
      // A failed restore is not cached: the next session tries again.
      instance.catch(() => this.timeTravel.delete(key));
    }
    return instance.then((i) => i.address);
  }

  async remove(id: string): Promise<void> {
    if (!this.made.delete(id)) return;
    await this.provider.deleteRecoveryBranch(id);
  }

  /** Aborts restores in progress, then stops and deletes every instance this fake made. */
  async close(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled([...this.inFlight]);
    for (const id of [...this.made]) await this.remove(id).catch(() => undefined);
    for (const branch of await this.provider.listRecoveryBranches().catch(() => [])) {
      await this.provider.deleteRecoveryBranch(branch.id).catch(() => undefined);
    }
    await this.provider.removeAbandoned().catch(() => undefined);
    await rm(this.workDir, { recursive: true, force: true });
  }
}

async function replayFacts(url: string): Promise<Pick<Instance, 'replayLsn' | 'lastCommit'>> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rows } = await client.query<{ lsn: string | null; ts: Date | null }>(
      'select pg_last_wal_replay_lsn()::text as lsn, pg_last_xact_replay_timestamp() as ts',
    );
    return { replayLsn: rows[0]?.lsn ?? null, lastCommit: rows[0]?.ts ?? null };
  } catch {
    return { replayLsn: null, lastCommit: null };
  } finally {
    await client.end().catch(() => undefined);
  }
}
