import type { Command, Option } from 'commander';
import { readdir } from 'node:fs/promises';
import { badInput } from '../../errors.js';
import type { CommandRunner } from '../program.js';

/**
 * Shell completion. The scripts hand the words typed so far to `pitr __complete -- <words…>`,
 * which prints the candidates for the last one: commands, options, option choices, and branch
 * names, run ids and playbook names from the local state (no server is contacted).
 */
const SCRIPTS: Record<string, string> = {
  bash: `# pitr completion for bash: source <(pitr completion bash)
_pitr_complete() {
  local IFS=$'\\n'
  COMPREPLY=($(pitr __complete -- "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _pitr_complete pitr
`,
  zsh: `#compdef pitr
# pitr completion for zsh: source <(pitr completion zsh)
_pitr() {
  local -a candidates
  candidates=("\${(@f)$(pitr __complete -- "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  compadd -a candidates
}
compdef _pitr pitr
`,
  fish: `# pitr completion for fish: pitr completion fish | source
function __pitr_complete
  set -l tokens (commandline -opc) (commandline -ct)
  pitr __complete -- $tokens[2..-1] 2>/dev/null
end
complete -c pitr -f -a '(__pitr_complete)'
`,
};

const visible = (c: Command) => !(c as unknown as { _hidden?: boolean })._hidden;
const optionsOf = (c: Command): readonly Option[] => c.options.filter((o) => !o.hidden);

function findOption(chain: Command[], flag: string): Option | undefined {
  for (const c of chain) for (const o of c.options) if (o.long === flag || o.short === flag) return o;
  return undefined;
}

/** Local names a positional argument or an option value can take. */
async function namesFor(kind: string, words: readonly string[]): Promise<string[]> {
  if (kind === 'shell') return Object.keys(SCRIPTS);
  if (kind === 'playbook') {
    const { SHIPPED_PLAYBOOKS } = await import('../../playbooks/load.js');
    return (await readdir(SHIPPED_PLAYBOOKS).catch(() => [] as string[])).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5));
  }
  if (kind !== 'branch' && kind !== 'run-id') return [];
  const { resolveConfig } = await import('../../config/index.js');
  const flag = words.indexOf('--work-dir');
  const config = await resolveConfig({ flags: flag >= 0 && words[flag + 1] ? { workDir: words[flag + 1] } : {}, env: process.env, cwd: process.cwd() }).catch(() => undefined);
  if (!config) return [];
  if (kind === 'run-id') {
    const { RunStore } = await import('../../recover/runs.js');
    return (await new RunStore(config.workDir).list().catch(() => [])).map((r) => r.id);
  }
  const { BranchStore } = await import('../../providers/local/branch-store.js');
  return (await new BranchStore(config.workDir).list().catch(() => [])).flatMap((b) => [b.name, b.id]);
}

/** Candidates for the last word, given the words before it (without the leading "pitr"). */
export async function complete(program: Command, words: readonly string[]): Promise<string[]> {
  const current = words.at(-1) ?? '';
  const chain: Command[] = [program];
  let positional = 0;
  for (let i = 0; i < words.length - 1; i++) {
    const word = words[i]!;
    const command = chain.at(-1)!;
    if (word.startsWith('-')) {
      const option = findOption(chain, word);
      if (option && (option.required || option.optional) && !word.includes('=')) i++;
      continue;
    }
    const sub = command.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (sub && positional === 0) chain.push(sub);
    else positional++;
  }
  const command = chain.at(-1)!;
  const previous = words.at(-2);
  const valueOf = previous?.startsWith('-') ? findOption(chain, previous) : undefined;
  let candidates: string[];
  if (valueOf && (valueOf.required || valueOf.optional)) {
    candidates = valueOf.argChoices ?? (valueOf.long === '--branch' ? await namesFor('branch', words) : []);
  } else if (current.startsWith('-')) {
    candidates = chain.flatMap((c) => optionsOf(c).map((o) => o.long ?? o.short ?? '')).concat('--help');
  } else {
    const subs = positional === 0 ? command.commands.filter(visible).map((c) => c.name()) : [];
    const args = command.registeredArguments;
    const arg = args[Math.min(positional, args.length - 1)];
    candidates = [...subs, ...(arg && (positional < args.length || arg.variadic) ? await namesFor(arg.name(), words) : [])];
  }
  return [...new Set(candidates)].filter((c) => c && c.startsWith(current)).sort();
}

export const register: CommandRunner = (program, run) => {
  program
    .command('completion <shell>')
    .description('print a shell completion script: bash, zsh or fish (e.g. source <(pitr completion bash))')
    .action(
      run<Record<string, never>, [string]>(async (ctx, _opts, shell) => {
        const script = SCRIPTS[shell];
        if (!script) throw badInput('bad_shell', `completion is available for bash, zsh and fish (got "${shell}")`);
        ctx.output.result({ shell, script }, (d) => d.script.trimEnd());
        return 0;
      }),
    );
  program
    .command('__complete', { hidden: true })
    .argument('[words...]')
    .allowUnknownOption()
    .action(async (words: string[]) => {
      // No context: completion must work without any configuration and print nothing else.
      process.stdout.write((await complete(program, words)).map((c) => `${c}\n`).join(''));
    });
};
