import { pino, type Logger, type LevelWithSilent } from 'pino';
import { redactDeep, redactSecrets } from './redact.js';

export type { Logger } from 'pino';

export { LOG_LEVELS } from './log-levels.js';

/**
 * Logs are diagnostics for the operator, so they go to stderr and never mix with the command's
 * output on stdout. Every string and object is redacted before it is serialised.
 */
export function createLogger(level: LevelWithSilent = 'warn', destination: NodeJS.WritableStream = process.stderr): Logger {
  return pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (object) => redactDeep(object),
      },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((a) => (typeof a === 'string' ? redactSecrets(a) : a)) as Parameters<typeof method>);
        },
      },
    },
    pino.destination({ dest: (destination as { fd?: number }).fd ?? 2, sync: true }),
  );
}

/** A logger that drops everything, for library callers and tests that do not care. */
export const silentLogger: Logger = pino({ level: 'silent' });
