// src/config: the settings of a run, merged from defaults, the config file, PITR_* variables and flags.
// Core: must not import src/cli or any feature folder (export, recover, playbooks…); it reads files and
// the environment only, and hands back one validated Config.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { z } from 'zod';
import { badInput } from '../errors.js';
import { LOG_LEVELS } from '../log.js';
import { registerSecret } from '../redact.js';
import { DEFAULT_RETENTION } from '../retention/gfs.js';
import { parseDuration } from '../time/index.js';

/**
 * Settings come from flags, then environment variables, then a config file
 * (pitr.config.json|yaml|yml in the current directory, or --config). Each setting is declared
 * once here with its environment variable, so the three sources can never drift apart.
 *
 * Each setting has a kind. A value that plainly fits its kind is taken as is; anything else (and
 * every config file) goes through zod, which also words the errors. zod is loaded only then:
 * it is most of the start-up time of a command that would otherwise load nothing heavy.
 */
type Kind =
  | 'text'
  | 'url'
  | 'postgresUrl'
  | 'duration'
  | 'count'
  | 'checks'
  | { readonly oneOf: readonly string[] }
  | { readonly pattern: RegExp; readonly message: string };

export interface DrillCheckSetting {
  name?: string | undefined;
  sql: string;
  expect: string | number | boolean | null;
}

type ValueOf<K> = K extends 'count' ? number : K extends 'checks' ? DrillCheckSetting[] : K extends { readonly oneOf: readonly (infer E)[] } ? E : string;

export const SETTINGS = {
  provider: { env: 'PITR_PROVIDER', kind: { oneOf: ['neon', 'local'] }, path: false },
  logLevel: { env: 'PITR_LOG_LEVEL', kind: { oneOf: LOG_LEVELS }, path: false },
  timezone: { env: 'PITR_TZ', kind: 'text', path: false },
  ttl: { env: 'PITR_TTL', kind: 'duration', path: false },
  databaseUrl: { env: 'DATABASE_URL', kind: 'postgresUrl', path: false },
  backupDir: { env: 'PITR_BACKUP_DIR', kind: 'text', path: true },
  walArchive: { env: 'PITR_WAL_ARCHIVE', kind: 'text', path: true },
  restoreCommand: { env: 'PITR_RESTORE_COMMAND', kind: 'text', path: false },
  workDir: { env: 'PITR_WORK_DIR', kind: 'text', path: true },
  archiveWait: { env: 'PITR_ARCHIVE_WAIT', kind: 'duration', path: false },
  neonApiKey: { env: 'NEON_API_KEY', kind: 'text', path: false },
  neonApiHost: { env: 'NEON_API_HOST', kind: 'url', path: false },
  neonProjectId: { env: 'NEON_PROJECT_ID', kind: 'text', path: false },
  neonSourceBranch: { env: 'NEON_SOURCE_BRANCH', kind: 'text', path: false },
  neonDatabase: { env: 'NEON_DATABASE', kind: 'text', path: false },
  neonRole: { env: 'NEON_ROLE', kind: 'text', path: false },
  /** How Neon snapshots are kept: the snapshot API when the account has it (auto), always the API, or a branch without compute. */
  neonSnapshots: { env: 'PITR_NEON_SNAPSHOTS', kind: { oneOf: ['auto', 'api', 'branch'] }, path: false },
  driver: { env: 'PITR_DRIVER', kind: { oneOf: ['pg', 'ws'] }, path: false },
  wsProxy: { env: 'PITR_WS_PROXY', kind: { pattern: /^wss?:\/\//, message: 'must be a ws:// or wss:// URL template with {host} and {port}' }, path: false },
  httpTimeout: { env: 'PITR_HTTP_TIMEOUT', kind: 'duration', path: false },
  /** Retention (grandfather-father-son) for snapshot prune and backup prune. */
  keepDaily: { env: 'PITR_KEEP_DAILY', kind: 'count', path: false },
  keepWeekly: { env: 'PITR_KEEP_WEEKLY', kind: 'count', path: false },
  keepMonthly: { env: 'PITR_KEEP_MONTHLY', kind: 'count', path: false },
  keepYearly: { env: 'PITR_KEEP_YEARLY', kind: 'count', path: false },
  /** A local snapshot takes a fresh base backup first when the newest is older than this. */
  snapshotBackupAge: { env: 'PITR_SNAPSHOT_BACKUP_AGE', kind: 'duration', path: false },
  encryptionKeyFile: { env: 'PITR_ENCRYPTION_KEY_FILE', kind: 'text', path: true },
  s3Endpoint: { env: 'PITR_S3_ENDPOINT', kind: 'url', path: false },
  s3Region: { env: 'PITR_S3_REGION', kind: 'text', path: false },
  /** Webhook for failure notices (a Slack webhook URL is a credential: kept out of argv, redacted everywhere). */
  notifyUrl: { env: 'PITR_NOTIFY_URL', kind: { pattern: /^https?:\/\//, message: 'must be an http(s) URL' }, path: false },
  /** The team's own assertions for pitr drill: [{ name?, sql, expect }] (JSON in the environment). */
  drillChecks: { env: 'PITR_DRILL_CHECKS', kind: 'checks', path: false },
} as const satisfies Record<string, { env: string; kind: Kind; path: boolean }>;

export type SettingName = keyof typeof SETTINGS;
type SettingValue<K extends SettingName> = ValueOf<(typeof SETTINGS)[K]['kind']>;
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

function isDuration(v: string): boolean {
  try {
    parseDuration(v);
    return true;
  } catch {
    return false;
  }
}

/** The value when it plainly fits its kind (exactly what zod would return for it), else undefined. */
function plainValue(kind: Kind, v: unknown): unknown {
  if (typeof v !== 'string' || v.length === 0) return undefined;
  if (kind === 'text') return v;
  if (kind === 'postgresUrl') return /^postgres(ql)?:\/\//.test(v) ? v : undefined;
  if (kind === 'duration') return isDuration(v) ? v : undefined;
  if (kind === 'count') return /^\d{1,15}$/.test(v) ? Number(v) : undefined;
  if (typeof kind === 'object' && 'oneOf' in kind) return kind.oneOf.includes(v) ? v : undefined;
  if (typeof kind === 'object' && 'pattern' in kind) return kind.pattern.test(v) ? v : undefined;
  return undefined; // url and checks: zod decides
}

type Zod = typeof z;

function schemaOf(z: Zod, kind: Kind): z.ZodType {
  switch (kind) {
    case 'text':
      return z.string().min(1);
    case 'url':
      return z.string().url();
    case 'postgresUrl':
      return z
        .string()
        .min(1)
        .refine((v) => /^postgres(ql)?:\/\//.test(v), 'must be a postgres:// or postgresql:// URL');
    case 'duration':
      return z.string().refine(isDuration, 'must be a duration like 90s, 15m, 24h or 7d');
    case 'count':
      return z.coerce.number().int('must be a whole number').min(0, 'must be 0 or more');
    case 'checks':
      return z.preprocess(
        (v) => {
          if (typeof v !== 'string') return v;
          try {
            return JSON.parse(v);
          } catch {
            return v; // reported below as "expected array"
          }
        },
        z.array(z.strictObject({ name: z.string().optional(), sql: z.string().min(1), expect: z.union([z.string(), z.number(), z.boolean(), z.null()]) })),
      );
    default:
      return 'oneOf' in kind ? z.enum(kind.oneOf as [string, ...string[]]) : z.string().regex(kind.pattern, kind.message);
  }
}

async function loadZod(): Promise<Zod> {
  return (await import('zod')).z;
}

async function fileSchema(): Promise<z.ZodType> {
  const z = await loadZod();
  return z.strictObject(Object.fromEntries(Object.entries(SETTINGS).map(([k, v]) => [k, schemaOf(z, v.kind).optional()])));
}

/** A flag or environment value of one setting: its value, or zod's first complaint. */
async function parseSetting(kind: Kind, value: unknown): Promise<{ ok: true; value: unknown } | { ok: false; message: string }> {
  const plain = plainValue(kind, value);
  if (plain !== undefined) return { ok: true, value: plain };
  const parsed = schemaOf(await loadZod(), kind).safeParse(value);
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, message: parsed.error.issues[0]!.message };
}

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
  const parsed = (await fileSchema()).safeParse(data ?? {});
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
    const parsed = await parseSetting(spec.kind, value);
    if (!parsed.ok) throw badInput('bad_config', `invalid ${origin}: ${parsed.message}`);
    merged[key] = spec.path && typeof parsed.value === 'string' && origin !== `${filePath}: ${key}` ? resolve(cwd, parsed.value) : parsed.value;
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
