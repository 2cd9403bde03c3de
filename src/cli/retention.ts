import type { Command } from 'commander';
import { describeRetentionPolicy, parseRetentionPolicy, type RetentionPolicy } from '../retention/gfs.js';
import type { CommandContext } from './context.js';

export interface RetentionOptions {
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  dryRun?: boolean;
}

export function addRetentionOptions(command: Command): Command {
  return command
    .option('--keep-daily <n>', 'newest of each of the last n days (config keepDaily, default 30)')
    .option('--keep-weekly <n>', 'newest of each of the last n ISO weeks (default 12)')
    .option('--keep-monthly <n>', 'newest of each of the last n months (default 12)')
    .option('--keep-yearly <n>', 'newest of each of the last n years (default 7)')
    .option('--dry-run', 'show what would be kept and deleted, and why, without deleting');
}

/** Flags over config (which already merged env and file), with the team's policy as defaults. */
export function retentionPolicy(ctx: CommandContext, opts: RetentionOptions): RetentionPolicy {
  const { config } = ctx;
  const fromConfig = { daily: config.keepDaily, weekly: config.keepWeekly, monthly: config.keepMonthly, yearly: config.keepYearly };
  return parseRetentionPolicy(
    {
      ...(opts.keepDaily !== undefined && { daily: opts.keepDaily }),
      ...(opts.keepWeekly !== undefined && { weekly: opts.keepWeekly }),
      ...(opts.keepMonthly !== undefined && { monthly: opts.keepMonthly }),
      ...(opts.keepYearly !== undefined && { yearly: opts.keepYearly }),
    },
    fromConfig,
  );
}

export { describeRetentionPolicy };
