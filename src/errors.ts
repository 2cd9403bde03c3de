/**
 * Every failure the core reports is a PitrError: a stable code, a one-line message meant for a
 * person under stress, and an exit-code class so the CLI never has to guess.
 */
export type ExitClass = 'failure' | 'usage' | 'refused';

export const EXIT_CODES: Record<ExitClass | 'ok', number> = {
  ok: 0,
  failure: 1,
  usage: 2,
  refused: 3,
};

export class PitrError extends Error {
  readonly code: string;
  readonly exitClass: ExitClass;
  /** Extra lines for --log-level debug or the run report; never shown as the headline. */
  readonly detail: string | undefined;

  constructor(code: string, message: string, options: { exit?: ExitClass; detail?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PitrError';
    this.code = code;
    this.exitClass = options.exit ?? 'failure';
    this.detail = options.detail;
  }

  get exitCode(): number {
    return EXIT_CODES[this.exitClass];
  }
}

/** Bad input from the user: exit 2, before any work starts. */
export function badInput(code: string, message: string, detail?: string): PitrError {
  return new PitrError(code, message, { exit: 'usage', ...(detail === undefined ? {} : { detail }) });
}

/** A safety rule said no: exit 3, nothing written. */
export function refused(code: string, message: string): PitrError {
  return new PitrError(code, message, { exit: 'refused' });
}
