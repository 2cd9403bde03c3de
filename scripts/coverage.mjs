#!/usr/bin/env node
// `npm run coverage [-- <vitest file filters>]`: line and branch coverage of src/, per folder.
//
// Vitest's v8 provider only sees code run inside its test workers, but most integration tests
// drive the built CLI (dist/) as child processes, which vitest 4 does not follow
// (vitest-dev/vitest#7064). So the children write raw V8 coverage through NODE_V8_COVERAGE
// (vitest.config.ts sets it in the workers), and this script converts it with the same converter
// the provider uses (ast-v8-to-istanbul, through tsc's source maps back to src/*.ts) and merges
// it into vitest's coverage map. Output: coverage/coverage-final.json (merged),
// coverage/coverage-summary.json, and a per-folder table on stdout.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const reportDir = join(root, 'coverage');
// The converter libraries come with @vitest/coverage-v8; resolve them from there so their
// versions are the ones the provider itself uses.
const fromProvider = createRequire(createRequire(join(root, 'package.json')).resolve('@vitest/coverage-v8/package.json'));
const load = async (name) => import(pathToFileURL(fromProvider.resolve(name)).href);

// `--summary-only [dir]`: print the table again from a coverage-final.json (default coverage/).
// `--after-run <dir>`: the suite already ran as `PITR_CHILD_COVERAGE=<dir> npm test -- --coverage`
// (how CI runs the README's test command once and still gets the table): merge and print.
const summaryAt = process.argv.indexOf('--summary-only');
const afterRunAt = process.argv.indexOf('--after-run');
const vitestArgs = summaryAt === -1 && afterRunAt === -1 ? process.argv.slice(2) : [];

let testExit = 0;
if (afterRunAt !== -1) {
  const childDir = resolve(process.argv[afterRunAt + 1] ?? '');
  await mergeChildCoverage(childDir);
  printTable(JSON.parse(readFileSync(join(reportDir, 'coverage-summary.json'), 'utf8')));
} else if (summaryAt === -1) {
  const childDir = mkdtempSync(join(tmpdir(), 'pitr-child-coverage-'));
  const run = spawnSync('npx', ['vitest', 'run', '--coverage', ...vitestArgs], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, PITR_CHILD_COVERAGE: childDir },
  });
  testExit = run.status ?? 1;
  await mergeChildCoverage(childDir);
  rmSync(childDir, { recursive: true, force: true });
  printTable(JSON.parse(readFileSync(join(reportDir, 'coverage-summary.json'), 'utf8')));
} else {
  const dir = resolve(process.argv[summaryAt + 1] ?? reportDir);
  const { createCoverageMap } = (await load('istanbul-lib-coverage')).default;
  const map = createCoverageMap(JSON.parse(readFileSync(join(dir, 'coverage-final.json'), 'utf8')));
  map.filter((file) => file.startsWith(join(root, 'src') + '/'));
  printTable(summarize(map));
}
process.exit(testExit);

async function mergeChildCoverage(childDir) {
  const { createCoverageMap } = (await load('istanbul-lib-coverage')).default;
  const { mergeProcessCovs } = (await load('@bcoe/v8-coverage')).default;
  const { default: astV8ToIstanbul } = await load('ast-v8-to-istanbul');
  const { parseAstAsync } = await import('vitest/node');

  const finalPath = join(reportDir, 'coverage-final.json');
  const map = createCoverageMap(JSON.parse(readFileSync(finalPath, 'utf8')));
  const distUrl = pathToFileURL(join(root, 'dist')).href + '/';
  const processes = [];
  for (const file of readdirSync(childDir)) {
    const dump = JSON.parse(readFileSync(join(childDir, file), 'utf8'));
    const result = dump.result.filter((script) => script.url.startsWith(distUrl) && script.url.endsWith('.js'));
    if (result.length) processes.push({ result });
  }
  const merged = processes.length ? mergeProcessCovs(processes).result : [];
  const unmatched = [];
  for (const script of merged) {
    const path = fileURLToPath(script.url);
    const code = readFileSync(path, 'utf8');
    const sourceMap = JSON.parse(readFileSync(`${path}.map`, 'utf8'));
    const fileCoverage = await astV8ToIstanbul({
      code,
      sourceMap,
      ast: await parseAstAsync(code),
      coverage: { url: script.url, functions: script.functions },
      wrapperLength: 0,
    });
    for (const [file, data] of Object.entries(fileCoverage)) {
      if (map.data[file] && addByPosition(map.data[file].data, data)) continue;
      unmatched.push(relative(root, file));
      map.merge({ [file]: data });
    }
  }
  if (unmatched.length) process.stdout.write(`child coverage: merged by location, items may count twice: ${unmatched.join(', ')}\n`);
  // dist/ may still hold output of a source file since deleted.
  map.filter((file) => file.startsWith(join(root, 'src') + '/') && existsSync(file));
  writeFileSync(finalPath, JSON.stringify(map.toJSON()));
  writeSummary(map, processes.length, merged.length);
  return map;
}

/**
 * Adds a child's hit counts to the in-process counts of the same file, item by item. Both sides
 * come from the same converter walking the same source, so they list the same statements,
 * functions and branches in the same order; but their locations differ in columns (vite's and
 * tsc's source maps place type-stripped code differently), so istanbul's merge by exact location
 * would count most items twice. Returns false, touching nothing, when the two lists do not line
 * up.
 */
function addByPosition(target, child) {
  const same = (a, b, slack = 0) => {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => b[k] && Math.abs(a[k].start.line - b[k].start.line) <= slack);
  };
  const locs = (map, pick) => Object.fromEntries(Object.entries(map).map(([k, v]) => [k, pick(v)]));
  // An item spanning lines (an unnamed function, a wrapped call) may start on the line of its
  // `(` in one map and of its first token in the other: same count, one line of slack, and the
  // branch types must agree exactly.
  if (!same(target.statementMap, child.statementMap, 1)) return false;
  if (!same(locs(target.fnMap, (f) => f.decl), locs(child.fnMap, (f) => f.decl), 1)) return false;
  if (!same(locs(target.branchMap, (b) => b.loc), locs(child.branchMap, (b) => b.loc), 1)) return false;
  if (Object.keys(target.branchMap).some((k) => target.branchMap[k].type !== child.branchMap[k].type)) return false;
  if (Object.keys(target.b).some((k) => target.b[k].length !== child.b[k].length)) return false;
  for (const k of Object.keys(target.s)) target.s[k] += child.s[k];
  for (const k of Object.keys(target.f)) target.f[k] += child.f[k];
  for (const k of Object.keys(target.b)) target.b[k] = target.b[k].map((n, i) => n + child.b[k][i]);
  return true;
}

function summarize(map) {
  const summary = {};
  for (const file of map.files()) {
    const s = map.fileCoverageFor(file).toSummary();
    summary[file] = { lines: s.lines, branches: s.branches, statements: s.statements, functions: s.functions };
  }
  return summary;
}

function writeSummary(map, processCount, scriptCount) {
  writeFileSync(join(reportDir, 'coverage-summary.json'), JSON.stringify(summarize(map), null, 1));
  process.stdout.write(`\nchild coverage: ${scriptCount} dist scripts from ${processCount} CLI processes merged in\n`);
}

/** Per folder of src/ (and per file below 90% lines), from coverage-summary.json. */
function printTable(summary) {
  const folders = new Map();
  const add = (key, s) => {
    const f = folders.get(key) ?? { lc: 0, lt: 0, bc: 0, bt: 0, files: 0 };
    f.lc += s.lines.covered;
    f.lt += s.lines.total;
    f.bc += s.branches.covered;
    f.bt += s.branches.total;
    f.files++;
    folders.set(key, f);
  };
  const files = [];
  for (const [file, s] of Object.entries(summary)) {
    if (file === 'total') continue;
    const rel = relative(root, file);
    add(dirname(rel), s);
    add('all of src/', s);
    if (!rel.startsWith('src/cli/')) add('src/ outside src/cli', s);
    files.push([rel, s]);
  }
  const pct = (c, t) => (t === 0 ? '   -  ' : `${((100 * c) / t).toFixed(1).padStart(5)}%`);
  const totals = ['all of src/', 'src/ outside src/cli'];
  const rows = [...folders.entries()].filter(([k]) => !totals.includes(k)).sort(([a], [b]) => a.localeCompare(b));
  rows.push(...totals.map((k) => [k, folders.get(k)]));
  const width = Math.max(...rows.map(([k]) => k.length), 6);
  const line = (k, f, lines, branches) => `${k.padEnd(width)}  ${String(f).padStart(5)}  ${lines.padStart(15)}  ${branches.padStart(15)}\n`;
  let out = '\n' + line('folder', 'files', 'lines', 'branches');
  for (const [k, f] of rows) {
    if (k === 'all of src/') out += '-'.repeat(width + 41) + '\n';
    out += line(k, f.files, `${pct(f.lc, f.lt)} ${f.lc}/${f.lt}`.trim(), `${pct(f.bc, f.bt)} ${f.bc}/${f.bt}`.trim());
  }
  const weak = files.filter(([, s]) => s.lines.total > 0 && s.lines.pct < 90).sort(([, a], [, b]) => a.lines.pct - b.lines.pct);
  out += `\nfiles under 90% lines (${weak.length}):\n`;
  for (const [rel, s] of weak) out += `  ${rel.padEnd(width + 12)} ${pct(s.lines.covered, s.lines.total)}  branches ${pct(s.branches.covered, s.branches.total)}\n`;
  process.stdout.write(out);
}
