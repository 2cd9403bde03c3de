import type { Micros, Question } from './bisect.js';
import type { LocalProbeSession } from './local-probes.js';
import { firstSuspect, type Suspect } from './suspects.js';
import type { TimelinePrefix } from './timeline.js';

/** How far behind the last commit read the instance stays: commits reach the WAL slightly out of time order. */
const TIME_ORDER_SLACK = 1_000_000;

/**
 * Replays the probe instance forward while the WAL timeline is still being read, so that the
 * exact answer costs about the larger of the two instead of their sum.
 *
 * How far is safe: the suspects are tried largest first, starting just before the first one. The
 * instance never passes the largest suspect of the part read so far (it stops just before it),
 * nor (by a second) the last commit read (a larger one may come after it). A suspect found later either is
 * smaller (tried after the current one, the fallback's business) or lies ahead. So the first try
 * finds the instance at or behind its instant and only replays forward. Without any suspect it
 * goes no further than the fallback bisection's first probe.
 */
export class ReplayAhead {
  private best: Suspect | undefined;
  private target: Micros;
  private running: Promise<void> | undefined;
  private stopped = false;
  private started = false;

  constructor(
    private readonly session: Pick<LocalProbeSession, 'advance' | 'pausedAt'>,
    /** The first probe (at --since): nothing moves before it is read. */
    first: Promise<unknown>,
    private readonly question: Question,
    private readonly since: Micros,
    private readonly until: Micros,
    /** Where the fallback bisection probes first: as far as it goes while no suspect is known. */
    private readonly withoutSuspect: Micros = until,
  ) {
    this.target = since;
    first.then(
      () => {
        this.started = true;
        this.kick();
      },
      () => (this.stopped = true),
    );
  }

  /** A new prefix of the timeline: moves the target on. */
  read(prefix: TimelinePrefix): void {
    this.best = firstSuspect(this.best, prefix.added, this.question, this.since, this.until);
    // A second behind the last commit read: commit times are taken before their WAL records are
    // written, so concurrent commits can reach the WAL slightly out of time order. Recovery also
    // then has a commit to stop at (it never promotes).
    let target = Math.min(prefix.through - TIME_ORDER_SLACK, this.until);
    target = Math.min(target, this.best ? this.best.at - 1 : this.withoutSuspect);
    if (target > this.target) this.target = target;
    this.kick();
  }

  /** Stops moving on and waits for a move in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }

  private kick(): void {
    if (this.running || this.stopped || !this.started) return;
    const at = this.session.pausedAt;
    if (at === null || this.target <= at) return;
    const target = this.target;
    this.running = this.session.advance(target).then(
      () => {
        this.running = undefined;
        this.kick();
      },
      // The instance was thrown away; the probes restore anew. Nothing more to gain here.
      () => {
        this.running = undefined;
        this.stopped = true;
      },
    );
  }
}
