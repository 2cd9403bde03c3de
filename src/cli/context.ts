import type { Command } from 'commander';
import { resolveConfig, type Config, type Settings } from '../config/index.js';
import { badInput } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import type { LocalProvider } from '../providers/local/index.js';
import type { Provider } from '../providers/types.js';
import { useDriver } from '../db/driver.js';
import { describePointInTime, parseDuration, parsePointInTime, type PointInTime } from '../time/index.js';
import { Output } from './output.js';

export interface GlobalOptions {
  provider?: 'neon' | 'local';
  config?: string;
  json?: boolean;
  yes?: boolean;
  input?: boolean;
  logLevel?: string;
  databaseUrl?: string;
  backupDir?: string;
  walArchive?: string;
  restoreCommand?: string;
  workDir?: string;
  tz?: string;
  archiveWait?: string;
  offline?: boolean;
  timeout?: string;
  apiHost?: string;
  projectId?: string;
  source?: string;
  database?: string;
  role?: string;
  driver?: 'pg' | 'ws';
  wsProxy?: string;
}

export interface CommandContext {
  config: Config;
  output: Output;
  logger: Logger;
  signal: AbortSignal;
  /** Prompts are allowed: stdin is a TTY and neither --yes nor --no-input was given. */
  interactive: boolean;
  yes: boolean;
  /** Providers load on first use: start-up time is part of every recovery. */
  provider(): Promise<Provider>;
  /** Reads a time argument (in --tz) and tells the user the UTC instant it resolved to. */
  readTime(text: string, remark?: string): PointInTime;
  localProvider(): Promise<LocalProvider>;
}

export interface CliIo {
  stdout: NodeJS.WriteStream | (NodeJS.WritableStream & { isTTY?: boolean });
  stderr: NodeJS.WriteStream | (NodeJS.WritableStream & { isTTY?: boolean });
  stdinIsTTY: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
  signal: AbortSignal;
}

export async function buildContext(command: Command, io: CliIo): Promise<CommandContext> {
  const opts = command.optsWithGlobals<GlobalOptions>();
  const output = new Output({ json: !!opts.json, stdout: io.stdout as never, stderr: io.stderr as never });
  const flags: Settings & { config?: string } = {
    ...(opts.config !== undefined && { config: opts.config }),
    ...(opts.provider !== undefined && { provider: opts.provider }),
    ...(opts.logLevel !== undefined && { logLevel: opts.logLevel as Settings['logLevel'] }),
    ...(opts.databaseUrl !== undefined && { databaseUrl: opts.databaseUrl }),
    ...(opts.backupDir !== undefined && { backupDir: opts.backupDir }),
    ...(opts.walArchive !== undefined && { walArchive: opts.walArchive }),
    ...(opts.restoreCommand !== undefined && { restoreCommand: opts.restoreCommand }),
    ...(opts.workDir !== undefined && { workDir: opts.workDir }),
    ...(opts.tz !== undefined && { timezone: opts.tz }),
    ...(opts.archiveWait !== undefined && { archiveWait: opts.archiveWait }),
    ...(opts.apiHost !== undefined && { neonApiHost: opts.apiHost }),
    ...(opts.projectId !== undefined && { neonProjectId: opts.projectId }),
    ...(opts.source !== undefined && { neonSourceBranch: opts.source }),
    ...(opts.database !== undefined && { neonDatabase: opts.database }),
    ...(opts.role !== undefined && { neonRole: opts.role }),
    ...(opts.driver !== undefined && { driver: opts.driver }),
    ...(opts.wsProxy !== undefined && { wsProxy: opts.wsProxy }),
  };
  const config = await resolveConfig({ flags, env: io.env, cwd: io.cwd });
  const logger = createLogger(config.logLevel);
  useDriver({ driver: config.driver, ...(config.wsProxy !== undefined && { wsProxy: config.wsProxy }) });
  let provider: Provider | undefined;
  const localProvider = async () => {
    if (config.provider !== 'local') {
      throw badInput('wrong_provider', `this command works with the local provider only (the ${config.provider} provider is selected)`);
    }
    const { LocalProvider } = await import('../providers/local/index.js');
    return (provider ??= new LocalProvider({
      ...(config.databaseUrl !== undefined && { databaseUrl: config.databaseUrl }),
      ...(config.backupDir !== undefined && { backupDir: config.backupDir }),
      ...(config.walArchive !== undefined && { walArchive: config.walArchive }),
      ...(config.restoreCommand !== undefined && { restoreCommand: config.restoreCommand }),
      workDir: config.workDir,
      archiveWaitMs: parseDuration(config.archiveWait),
      offline: !!opts.offline,
      recoveryTimeoutMs: opts.timeout ? parseDuration(opts.timeout) : 30 * 60_000,
      snapshotBackupAgeMs: parseDuration(config.snapshotBackupAge),
      logger,
    })) as import('../providers/local/index.js').LocalProvider;
  };
  return {
    config,
    output,
    logger,
    signal: io.signal,
    yes: !!opts.yes,
    interactive: io.stdinIsTTY && !opts.yes && opts.input !== false,
    localProvider,
    readTime(text, remark) {
      const at = parsePointInTime(text, { ...(config.timezone && { timeZone: config.timezone }) });
      const shown = describePointInTime(at);
      output.note(`target: ${shown}${at.input === shown ? '' : ` (from "${at.input}")`}${remark ? ` ${remark}` : ''}`);
      return at;
    },
    async provider() {
      if (config.provider !== 'neon') return localProvider();
      if (!config.neonApiKey) throw badInput('missing_api_key', 'the neon provider needs an API key: set NEON_API_KEY');
      const { NeonProvider } = await import('../providers/neon/index.js');
      return (provider ??= new NeonProvider({
        apiKey: config.neonApiKey,
        ...(config.neonApiHost !== undefined && { apiHost: config.neonApiHost }),
        projectId: config.neonProjectId ?? '',
        ...(config.neonSourceBranch !== undefined && { source: config.neonSourceBranch }),
        ...(config.neonDatabase !== undefined && { database: config.neonDatabase }),
        ...(config.neonRole !== undefined && { role: config.neonRole }),
        ...(config.neonSnapshots !== undefined && { snapshots: config.neonSnapshots }),
        httpTimeoutMs: parseDuration(config.httpTimeout),
        operationTimeoutMs: opts.timeout ? parseDuration(opts.timeout) : 5 * 60_000,
        signal: io.signal,
        logger,
      }));
    },
  };
}
