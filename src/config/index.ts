// src/config: the settings of a run, merged from defaults, the config file, PITR_* variables and flags.
// Core: must not import src/cli or any feature folder (export, recover, playbooks…); it reads files and
// the environment only, and hands back one validated Config.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { badInput } from '../errors.js';
import { LOG_LEVELS } from '../log.js';
import { registerSecret } from '../redact.js';
import { DEFAULT_RETENTION } from '../retention/gfs.js';
import { parseDuration } from '../time/index.js';

/**
 * Settings come from flags, then environment variables, then a config file
 * (pitr.config.json|yaml|yml in the current directory, or --config). Each setting is declared
 * once here with its environment variable, so the three sources can never drift apart.
 */
const postgresUrl = z
  .string()
  .min(1)
  .refine((v) => /^postgres(ql)?:\/\//.test(v), 'must be a postgres:// or postgresql:// URL');
const duration = z.string().refine((v) => {
  try {
    parseDuration(v);
    return true;
  } catch {
    return false;
  }
}, 'must be a duration like 90s, 15m, 24h or 7d');

const keepCount = z.coerce.number().int('must be a whole number').min(0, 'must be 0 or more');

export const SETTINGS = {
  provider: { env: 'PITR_PROVIDER', schema: z.enum(['neon', 'local']), path: false },
  logLevel: { env: 'PITR_LOG_LEVEL', schema: z.enum(LOG_LEVELS), path: false },
  timezone: { env: 'PITR_TZ', schema: z.string().min(1), path: false },
  ttl: { env: 'PITR_TTL', schema: duration, path: false },
  databaseUrl: { env: 'DATABASE_URL', schema: postgresUrl, path: false },
  backupDir: { env: 'PITR_BACKUP_DIR', schema: z.string().min(1), path: true },
  walArchive: { env: 'PITR_WAL_ARCHIVE', schema: z.string().min(1), path: true },
  restoreCommand: { env: 'PITR_RESTORE_COMMAND', schema: z.string().min(1), path: false },
  workDir: { env: 'PITR_WORK_DIR', schema: z.string().min(1), path: true },
  archiveWait: { env: 'PITR_ARCHIVE_WAIT', schema: duration, path: false },
  neonApiKey: { env: 'NEON_API_KEY', schema: z.string().min(1), path: false },
  neonApiHost: { env: 'NEON_API_HOST', schema: z.string().url(), path: false },
  neonProjectId: { env: 'NEON_PROJECT_ID', schema: z.string().min(1), path: false },
  neonSourceBranch: { env: 'NEON_SOURCE_BRANCH', schema: z.string().min(1), path: false },
  neonDatabase: { env: 'NEON_DATABASE', schema: z.string().min(1), path: false },
  neonRole: { env: 'NEON_ROLE', schema: z.string().min(1), path: false },
  /** How Neon snapshots are kept: the snapshot API when the account has it (auto), always the API, or a branch without compute. */
  neonSnapshots: { env: 'PITR_NEON_SNAPSHOTS', schema: z.enum(['auto', 'api', 'branch']), path: false },
  driver: { env: 'PITR_DRIVER', schema: z.enum(['pg', 'ws']), path: false },
  wsProxy: { env: 'PITR_WS_PROXY', schema: z.string().regex(/^wss?:\/\//, 'must be a ws:// or wss:// URL template with {host} and {port}'), path: false },
  httpTimeout: { env: 'PITR_HTTP_TIMEOUT', schema: duration, path: false },
  /** Retention (grandfather-father-son) for snapshot prune and backup prune. */
  keepDaily: { env: 'PITR_KEEP_DAILY', schema: keepCount, path: false },
  keepWeekly: { env: 'PITR_KEEP_WEEKLY', schema: keepCount, path: false },
  keepMonthly: { env: 'PITR_KEEP_MONTHLY', schema: keepCount, path: false },
  keepYearly: { env: 'PITR_KEEP_YEARLY', schema: keepCount, path: false },
  /** A local snapshot takes a fresh base backup first when the newest is older than this. */
  snapshotBackupAge: { env: 'PITR_SNAPSHOT_BACKUP_AGE', schema: duration, path: false },
  encryptionKeyFile: { env: 'PITR_ENCRYPTION_KEY_FILE', schema: z.string().min(1), path: true },
  s3Endpoint: { env: 'PITR_S3_ENDPOINT', schema: z.string().url(), path: false },
  s3Region: { env: 'PITR_S3_REGION', schema: z.string().min(1), path: false },
  /** Webhook for failure notices (a Slack webhook URL is a credential: kept out of argv, redacted everywhere). */
  notifyUrl: { env: 'PITR_NOTIFY_URL', schema: z.string().regex(/^https?:\/\//, 'must be an http(s) URL'), path: false },
  /** The team's own assertions for pitr drill: [{ name?, sql, expect }] (JSON in the environment). */
  drillChecks: {
    env: 'PITR_DRILL_CHECKS',
    schema: z.preprocess(
      (v) => {
        if (typeof v !== 'string') return v;
        try {
          return JSON.parse(v);
        } catch {
          return v; // reported below as "expected array"
        }
      },
      z.array(z.strictObject({ name: z.string().optional(), sql: z.string().min(1), expect: z.union([z.string(), z.number(), z.boolean(), z.null()]) })),
    ),
    path: false,
  },
} as const;

export type SettingName = keyof typeof SETTINGS;
type SettingValue<K extends SettingName> = z.infer<(typeof SETTINGS)[K]['schema']>;
export type Settings = { [K in SettingName]?: SettingValue<K> };

export interface Config extends Settings {
  provider: 'neon' | 'local';
  logLevel: (typeof LOG_LEVELS)[number];
  workDir: string;
  ttl: string;
  archiveWait: string;
  driver: 'pg' | 'ws';
  httpTimeout: string;
  keepDaily: number;
  keepWeekly: number;
  keepMonthly: number;
  keepYearly: number;
  snapshotBackupAge: string;
  /** The config file that was read, if any. */
  file: string | null;
}

const FileSchema = z.strictObject(
  Object.fromEntries(Object.entries(SETTINGS).map(([k, v]) => [k, v.schema.optional()])) as {
    [K in SettingName]: z.ZodOptional<(typeof SETTINGS)[K]['schema']>;
  },
);

const DEFAULT_FILES = ['pitr.config.json', 'pitr.config.yaml', 'pitr.config.yml'];

function zodLine(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const where = issue.path.length ? issue.path.join('.') : '(top level)';
  return `${where}: ${issue.message}`;
}

async function readConfigFile(path: string): Promise<Settings> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw badInput('bad_config', `cannot read config file ${path}`);
  }
  let data: unknown;
  try {
    // yaml is loaded only when a YAML file is used: start-up time is part of every recovery.
    data = path.endsWith('.json') ? JSON.parse(text) : (await import('yaml')).parse(text);
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0];
    throw badInput('bad_config', `invalid config ${path}: ${reason}`);
  }
  const parsed = FileSchema.safeParse(data ?? {});
  if (!parsed.success) throw badInput('bad_config', `invalid config ${path}: ${zodLine(parsed.error)}`);
  const settings = parsed.data as Settings;
  // Paths in a config file are relative to the file, so the file works from any directory.
  for (const [key, spec] of Object.entries(SETTINGS)) {
    const value = settings[key as SettingName];
    if (spec.path && typeof value === 'string' && !isAbsolute(value)) {
      (settings as Record<string, unknown>)[key] = resolve(dirname(path), value);
    }
  }
  return settings;
}

/** A webhook URL is redacted whole, and so is its path (where Slack and others keep the token). */
export function registerWebhook(url: string | undefined): void {
  if (!url) return;
  registerSecret(url);
  try {
    const u = new URL(url);
    if (u.pathname.length >= 8) registerSecret(u.pathname + u.search);
    if (u.password) registerSecret(u.password);
  } catch {
    /* validated by the schema */
  }
}

export interface ResolveInput {
  flags: Settings & { config?: string };
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export async function resolveConfig({ flags, env = process.env, cwd = process.cwd() }: ResolveInput): Promise<Config> {
  const filePath = flags.config ? resolve(cwd, flags.config) : DEFAULT_FILES.map((f) => resolve(cwd, f)).find((f) => existsSync(f));
  const fromFile = filePath ? await readConfigFile(filePath) : {};
  const merged: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(SETTINGS)) {
    const flag = flags[key as SettingName];
    const envValue = env[spec.env] === '' ? undefined : env[spec.env];
    let value: unknown = fromFile[key as SettingName];
    let origin = `${filePath}: ${key}`;
    if (envValue !== undefined) [value, origin] = [envValue, spec.env];
    if (flag !== undefined) [value, origin] = [flag, `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`];
    if (value === undefined) continue;
    const parsed = spec.schema.safeParse(value);
    if (!parsed.success) throw badInput('bad_config', `invalid ${origin}: ${parsed.error.issues[0]!.message}`);
    merged[key] = spec.path && typeof parsed.data === 'string' && origin !== `${filePath}: ${key}` ? resolve(cwd, parsed.data) : parsed.data;
  }
  registerSecret(merged.neonApiKey as string | undefined);
  registerWebhook(merged.notifyUrl as string | undefined);
  if (typeof merged.databaseUrl === 'string') {
    try {
      registerSecret(decodeURIComponent(new URL(merged.databaseUrl).password));
    } catch {
      /* validated above */
    }
  }
  return {
    ...(merged as Settings),
    provider: (merged.provider as Config['provider'] | undefined) ?? (merged.neonApiKey ? 'neon' : 'local'),
    logLevel: (merged.logLevel as Config['logLevel'] | undefined) ?? 'warn',
    workDir: (merged.workDir as string | undefined) ?? resolve(cwd, '.pitr'),
    ttl: (merged.ttl as string | undefined) ?? '24h',
    archiveWait: (merged.archiveWait as string | undefined) ?? '30s',
    driver: (merged.driver as Config['driver'] | undefined) ?? 'pg',
    httpTimeout: (merged.httpTimeout as string | undefined) ?? '30s',
    // The team's written policy (src/retention/gfs.ts): daily 30 / weekly 12 / monthly 12 / yearly 7.
    keepDaily: (merged.keepDaily as number | undefined) ?? DEFAULT_RETENTION.daily,
    keepWeekly: (merged.keepWeekly as number | undefined) ?? DEFAULT_RETENTION.weekly,
    keepMonthly: (merged.keepMonthly as number | undefined) ?? DEFAULT_RETENTION.monthly,
    keepYearly: (merged.keepYearly as number | undefined) ?? DEFAULT_RETENTION.yearly,
    snapshotBackupAge: (merged.snapshotBackupAge as string | undefined) ?? '24h',
    file: filePath ?? null,
  };
}
