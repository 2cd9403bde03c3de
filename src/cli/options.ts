import type { Command } from 'commander';

/**
 * Options shared by several commands, declared by each command that uses them (so its --help is
 * complete and a command that does not use one rejects it).
 */

export const AT_HELP = 'when production was right: 2026-11-25T14:03:00Z, "2026-11-25 14:03" (UTC or --tz), -15m, "2h ago", lsn:16/B374D848, snapshot:<name>';

export function addAtOption(command: Command, description = AT_HELP): Command {
  return command.option('--at <time>', description);
}

export interface BranchCreationOptions {
  ttl?: string;
  name?: string;
  timeout?: string;
  offline?: boolean;
  archiveWait?: string;
}

/**
 * How a recovery branch is made. `ttl` and `name` only where the command keeps the branch it
 * makes; the others steer the provider and apply wherever a branch is created.
 */
export function addBranchCreationOptions(command: Command, keeps: { ttl?: boolean; name?: boolean } = { ttl: true, name: true }): Command {
  if (keeps.ttl) command.option('--ttl <duration>', 'delete the branch after this long (branches prune; default 24h)');
  if (keeps.name) command.option('--name <name>', 'branch name (default pitr-<source>-<yyyymmddThhmmssZ>)');
  return command
    .option('--timeout <duration>', 'give up when creating the branch (WAL replay, Neon operations) takes longer than this (default 30m local, 5m Neon)')
    .option('--offline', 'local: do not contact production, recover from the backups and the WAL archive alone')
    .option('--archive-wait <duration>', 'local: how long to wait for the archiver to take the newest WAL (default 30s)');
}

/** `pitr --at` and `pitr branch create`. */
export function addBranchCreateOptions(command: Command): Command {
  addAtOption(command);
  addBranchCreationOptions(command);
  return command.option('--show-password', 'print the connection URL with its password');
}
