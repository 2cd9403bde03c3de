import type { Provider, RecoveryBranch } from './types.js';

/** A connection URL given where a branch is expected (any case: `POSTGRESQL://` is one too). */
export function isDatabaseUrl(text: string): boolean {
  return /^postgres(ql)?:\/\//i.test(text);
}

export interface BranchTarget {
  /** Where to connect (password included: redact before showing). */
  url: string;
  /** For people: which database this is. */
  label: string;
  /** The provider's branch, unless a URL was given. */
  branch?: RecoveryBranch;
}

/** "production as it was at <time> (from export <name>)" */
export function describeExportBranch(b: RecoveryBranch): string {
  return `production as it was at ${b.target} (from export ${String(b.details?.exportName ?? b.name)})`;
}

/** A branch for people: an export branch names its export, any other its name and point in time. */
export function describeBranch(b: RecoveryBranch): string {
  return b.details?.purpose === 'export' ? describeExportBranch(b) : `${b.name} (at ${b.target})`;
}

/**
 * "Which database is the branch?", answered once for the CLI, playbooks and exports: a
 * postgres:// URL is that database; an id or name is that branch of `provider`; nothing means
 * the newest branch (`noBranch` says what to do when there is none).
 */
export async function resolveBranchTarget(
  provider: Pick<Provider, 'getRecoveryBranch' | 'listRecoveryBranches' | 'connectionString'>,
  ref: string | undefined,
  noBranch: () => Error,
): Promise<BranchTarget> {
  if (ref !== undefined && isDatabaseUrl(ref)) return { url: ref, label: 'the given database' };
  const branch = ref !== undefined ? await provider.getRecoveryBranch(ref) : await newestBranch(provider);
  if (!branch) throw noBranch();
  return { url: await provider.connectionString(branch.id), label: describeBranch(branch), branch };
}

/** The most recently created branch, if any. */
export async function newestBranch(provider: Pick<Provider, 'listRecoveryBranches'>): Promise<RecoveryBranch | undefined> {
  return (await provider.listRecoveryBranches()).sort((a, b) => a.createdAt.localeCompare(b.createdAt)).at(-1);
}
