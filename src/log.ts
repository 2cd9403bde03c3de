import { createRequire } from 'node:module';
import type { Logger, LevelWithSilent } from 'pino';
import { redactDeep, redactSecrets } from './redact.js';

export type { Logger } from 'pino';
export { LOG_LEVELS } from './log-levels.js';

const LEVEL_VALUES: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
const noop = () => undefined;

/** pino is CommonJS; required on first use so commands that log nothing never load it. */
const loadPino = () => (createRequire(import.meta.url)('pino') as typeof import('pino')).pino;

function build(level: LevelWithSilent, destination: NodeJS.WritableStream): Logger {
  const pino = loadPino();
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

/**
 * Logs are diagnostics for the operator, so they go to stderr and never mix with the command's
 * output on stdout. Every string and object is redacted before it is serialised. The pino
 * instance is made on the first message at or above the level: below it, calls are no-ops.
 */
export function createLogger(level: LevelWithSilent = 'warn', destination: NodeJS.WritableStream = process.stderr): Logger {
  let real: Logger | undefined;
  const threshold = LEVEL_VALUES[level] ?? LEVEL_VALUES.warn!;
  return new Proxy({} as Logger, {
    get(_target, key) {
      if (typeof key === 'string' && key in LEVEL_VALUES && key !== 'silent' && LEVEL_VALUES[key]! < threshold) return noop;
      if (key === 'level') return level;
      real ??= build(level, destination);
      const value = (real as unknown as Record<PropertyKey, unknown>)[key];
      return typeof value === 'function' ? value.bind(real) : value;
    },
  });
}

/** A logger that drops everything, for library callers and tests that do not care. */
export const silentLogger: Logger = createLogger('silent');
