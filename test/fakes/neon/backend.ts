import type { Instance } from './instances.js';
import type { HostPort } from './pg-proxy.js';

/**
 * Where a branch's data lives: production itself, or a local instance that may still be
 * restoring. Endpoints ask it for an address per connection, so a session opened while the
 * "compute starts" simply waits, as it would on Neon.
 */
export class Backend {
  private instance: Instance | undefined;
  private failure: string | undefined;
  private released = false;
  private readonly ready: Promise<HostPort>;

  private constructor(
    source: Promise<{ address: HostPort; instance?: Instance }>,
    readonly kind: 'production' | 'instance' | 'none',
    private readonly removeInstance: (id: string) => Promise<void> = async () => undefined,
  ) {
    this.ready = source.then(
      ({ address, instance }) => {
        this.instance = instance;
        // Released while it was still restoring (branch deleted, restore rolled back): drop it now.
        if (this.released && instance) void this.removeInstance(instance.id).catch(() => undefined);
        return address;
      },
      (err: unknown) => {
        this.failure = err instanceof Error ? err.message : String(err);
        throw new Error(this.failure);
      },
    );
    this.ready.catch(() => undefined);
  }

  static production(address: HostPort): Backend {
    return new Backend(Promise.resolve({ address }), 'production');
  }

  static restoring(instance: Promise<Instance>, removeInstance: (id: string) => Promise<void>): Backend {
    return new Backend(
      instance.then((i) => ({ address: i.address, instance: i })),
      'instance',
      removeInstance,
    );
  }

  /** No data reachable: a stalled compute (never ready) or a branch the fake holds no copy of. */
  static none(reason?: string): Backend {
    return new Backend(reason === undefined ? new Promise(() => undefined) : Promise.reject(new Error(reason)), 'none');
  }

  /** Settles when the restore does; rejects with its error message. */
  whenReady(): Promise<HostPort> {
    return this.ready;
  }

  get restored(): Instance | undefined {
    return this.instance;
  }

  get error(): string | undefined {
    return this.failure;
  }

  /** For a connection: the address, waiting for a restore in progress. */
  async connect(): Promise<HostPort> {
    if (this.released) throw new Error('the compute of this branch was removed');
    try {
      return await this.ready;
    } catch (err) {
      throw new Error(`compute failed to start: ${(err as Error).message}`);
    }
  }

  /** Deletes the local instance (now, or when its restore ends). Production is never touched. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.instance) await this.removeInstance(this.instance.id);
  }
}
