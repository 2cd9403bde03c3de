import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface CliRun {
  args: string[];
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON when it is JSON. */
  json: any;
}

/** Every CLI run of a test file, so a test can assert that no secret ever appeared. */
export const cliTranscript: CliRun[] = [];

export function runPitr(args: string[], env: Record<string, string | undefined> = {}, options: { cwd?: string; timeoutMs?: number } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd ?? process.cwd(),
      env: { ...cleanEnv(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      const result = { args, code: code ?? 1, stdout, stderr, json };
      cliTranscript.push(result);
      if (process.env.PITR_TEST_TRANSCRIPTS) {
        appendFileSync(join(process.env.PITR_TEST_TRANSCRIPTS, `${process.pid}.jsonl`), JSON.stringify({ args, stdout, stderr }) + '\n');
      }
      resolve(result);
    });
  });
}

/** The test runner's environment without any pitr or Neon settings that could leak in. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (/^(PITR_|NEON_|PG)|^DATABASE_URL$/.test(key)) delete env[key];
  return env;
}

/** Live (non-zombie) processes whose command line mentions `path`: stray servers left behind. */
export async function processesUsing(path: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.includes(path)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state && state !== 'Z') found.push(`${pid}: ${cmdline.replace(/\0/g, ' ')}`);
  }
  return found;
}
