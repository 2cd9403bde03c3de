import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Writes a run's report.json (the result as scripts read it) and report.md (as people read it)
 * into `dir`, which must exist. `mode` makes both files private (a restore report names targets).
 */
export async function writeRunReport(dir: string, json: unknown, markdown: string, options: { mode?: number } = {}): Promise<void> {
  const fileOptions = options.mode === undefined ? {} : { mode: options.mode };
  await writeFile(join(dir, 'report.json'), JSON.stringify(json, null, 2) + '\n', fileOptions);
  await writeFile(join(dir, 'report.md'), markdown, fileOptions);
}
