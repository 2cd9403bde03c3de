import { Writable } from 'node:stream';
import { PitrError } from '../errors.js';
import { redactDeep, redactSecrets } from '../redact.js';
import type { ProgressEvent } from '../providers/types.js';
export { renderFields, renderTable } from '../report/format.js';

export interface OutputOptions {
  json: boolean;
  stdout?: Writable & { isTTY?: boolean };
  stderr?: Writable & { isTTY?: boolean; columns?: number };
}

/**
 * The one writer every command prints through: a result goes to stdout as text for people or as
 * one JSON document for scripts; progress and notes go to stderr; everything is redacted.
 */
export class Output {
  readonly json: boolean;
  private readonly stdout: Writable & { isTTY?: boolean };
  private readonly stderr: Writable & { isTTY?: boolean; columns?: number };
  private progressLineOpen = false;

  constructor(options: OutputOptions) {
    this.json = options.json;
    this.stdout = options.stdout ?? process.stdout;
    this.stderr = options.stderr ?? process.stderr;
  }

  get stderrIsTTY(): boolean {
    return !!this.stderr.isTTY;
  }

  /**
   * The command's result. `reveal` skips redaction for values the user explicitly asked to see.
   * `data` names the top-level fields that hold database row values: data is never redacted (a
   * value that looks like a URL with a password, or a column named `password`, is still exactly
   * what the table holds); every other field is. The text renderer gets the other fields already
   * redacted, and its output is then printed as is.
   */
  result<T>(data: T, render: (data: T) => string, options: { reveal?: boolean; data?: readonly (keyof T & string)[] } = {}): void {
    this.endProgress();
    const raw = new Set<string>(options.data ?? []);
    if (this.json) {
      const safe = options.reveal ? data : raw.size ? redactExcept(data, raw) : redactDeep(data);
      this.stdout.write(JSON.stringify(safe, null, 2) + '\n');
    } else {
      const text = raw.size && !options.reveal ? render(redactExcept(data, raw)) : render(data);
      this.stdout.write((options.reveal || raw.size ? text : redactSecrets(text)) + (text.endsWith('\n') ? '' : '\n'));
    }
  }

  /**
   * One line of a streamed result (ndjson, csv, sql), written as it is produced. Lines made of
   * row values (`data: true`) are written exactly; anything else is redacted.
   */
  stream(line: string, options: { data?: boolean } = {}): void {
    this.endProgress();
    this.stdout.write((options.data ? line : redactSecrets(line)) + '\n');
  }

  /**
   * Where a child process's output goes (a migration's): its stdout to ours, or to stderr under
   * --json so stdout stays one JSON document; line by line through the redactor, since tools
   * like to print the connection URL they were given.
   */
  childStreams(): { stdout: Writable; stderr: Writable } {
    this.endProgress();
    const redacting = (target: Writable) => {
      let pending = '';
      return new Writable({
        write(chunk: Buffer, _encoding, done) {
          const text = pending + chunk.toString('utf8');
          const cut = text.lastIndexOf('\n') + 1;
          pending = text.slice(cut);
          if (cut > 0) target.write(redactSecrets(text.slice(0, cut)));
          done();
        },
        final(done) {
          if (pending) target.write(redactSecrets(pending));
          done();
        },
      });
    };
    return { stdout: redacting(this.json ? this.stderr : this.stdout), stderr: redacting(this.stderr) };
  }

  /** A line for the person at the terminal (stderr, so stdout stays parseable). */
  note(line: string): void {
    if (this.json && !this.stderrIsTTY) return;
    this.endProgress();
    this.stderr.write(redactSecrets(line) + '\n');
  }

  /** A warning a script must see too: always on stderr, also under --json. */
  warn(line: string): void {
    this.endProgress();
    this.stderr.write(`pitr: ${redactSecrets(line)}\n`);
  }

  /**
   * Progress on stderr: a line rewritten in place on a terminal (at most 10 times a second),
   * plain lines otherwise, one per phase plus one every few seconds, so logs stay readable.
   */
  progress(event: ProgressEvent): void {
    const now = Date.now();
    if (this.stderrIsTTY) {
      if (now - this.lastProgressAt < 100 && event.phase === this.lastPhase) return;
      const bar = event.fraction === undefined ? '' : `[${'#'.repeat(Math.round(event.fraction * 20)).padEnd(20, '-')}] ${Math.round(event.fraction * 100)}% `;
      const line = redactSecrets(`${bar}… ${event.message}`).slice(0, (this.stderr.columns ?? 100) - 1);
      this.stderr.write(`\r\x1b[2K${line}`);
      this.progressLineOpen = true;
    } else if (!this.json) {
      if (event.phase === this.lastPhase && now - this.lastProgressAt < 3000) return;
      this.stderr.write(redactSecrets(`pitr: ${event.message}`) + '\n');
    }
    this.lastPhase = event.phase;
    this.lastProgressAt = now;
  }
  private lastPhase = '';
  private lastProgressAt = 0;

  private endProgress(): void {
    if (this.progressLineOpen) {
      this.stderr.write('\r\x1b[2K');
      this.progressLineOpen = false;
    }
  }

  /** Prints a failure as one line (and as JSON on stdout for scripts) and returns the exit code. */
  error(err: unknown, debug = false): number {
    this.endProgress();
    const pitrError = err instanceof PitrError ? err : undefined;
    const message = redactSecrets(pitrError ? pitrError.message : `unexpected error: ${(err as Error)?.message ?? String(err)}`).replace(/\s*\n\s*/g, ' ');
    const code = pitrError?.code ?? 'internal';
    const exitCode = pitrError?.exitCode ?? 1;
    // Errors that list several mistakes (a playbook's) print each on its own line.
    const problems = (pitrError as { problems?: readonly string[] } | undefined)?.problems;
    if (this.json) this.stdout.write(JSON.stringify({ error: { code, message, exitCode, ...(problems && { problems }) } }) + '\n');
    this.stderr.write(`pitr: error: ${message}\n`);
    if (problems && problems.length > 1) this.stderr.write(problems.map((p) => `  ${redactSecrets(p)}\n`).join(''));
    if (debug) {
      if (pitrError?.detail) this.stderr.write(redactSecrets(pitrError.detail) + '\n');
      if (!pitrError && err instanceof Error && err.stack) this.stderr.write(redactSecrets(err.stack) + '\n');
    }
    return exitCode;
  }
}

function redactExcept<T>(data: T, raw: Set<string>): T {
  if (!data || typeof data !== 'object' || Array.isArray(data)) return redactDeep(data);
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, raw.has(k) ? v : redactDeep(v)])) as T;
}


