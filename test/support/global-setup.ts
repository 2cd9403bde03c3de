import { execFileSync } from 'node:child_process';

/** Integration tests drive the real built CLI, so build it once before any test file runs. */
export default function setup(): void {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
}
