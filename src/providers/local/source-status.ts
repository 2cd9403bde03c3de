import { PitrError } from '../../errors.js';
import { redactUrl } from '../../redact.js';
import type { SourceInfo } from '../types.js';
import { listBackups } from './backups.js';
import type { LocalContext } from './context.js';
import { archivingProblems, connectProduction, readProductionFacts, type ProductionFacts } from './production.js';
import { listArchive } from './wal-archive.js';

/**
 * `pitr status` here: production's archiving settings and archiver, the base backups of this
 * production, and whether the WAL archive reaches from the oldest backup to now without a gap.
 */
export async function describeLocalSource(ctx: LocalContext): Promise<SourceInfo> {
  const problems: string[] = [];
  let facts: ProductionFacts | undefined;
  const databaseUrl = ctx.settings.databaseUrl;
  if (!databaseUrl) problems.push('production is not set (--database-url or DATABASE_URL)');
  else {
    try {
      const client = await connectProduction(databaseUrl);
      try {
        facts = await readProductionFacts(client);
      } finally {
        await client.end().catch(() => undefined);
      }
      problems.push(...archivingProblems(facts));
    } catch (err) {
      if (!(err instanceof PitrError)) throw err;
      problems.push(err.message);
    }
  }
  const allBackups = ctx.settings.backupDir ? await listBackups(ctx.settings.backupDir) : [];
  const backups = facts ? allBackups.filter((b) => b.systemIdentifier === facts.systemIdentifier) : allBackups;
  if (!ctx.settings.backupDir) problems.push('no backup directory (--backup-dir or PITR_BACKUP_DIR)');
  else if (backups.length === 0) problems.push(`no base backups in ${ctx.settings.backupDir}: run \`pitr backup\``);
  if (!ctx.settings.walArchive && !ctx.settings.restoreCommand) problems.push('no WAL archive (--wal-archive or --restore-command)');

  let archiveNewest: string | null = null;
  let archiveDetails: Record<string, unknown> | undefined;
  if (ctx.settings.walArchive) {
    const listing = await listArchive(ctx.settings.walArchive);
    archiveNewest = listing.newestArchivedAt;
    const oldest = backups[0];
    const gap = oldest && listing.newestName ? ctx.findGap(listing.segments, oldest, listing.newestName) : undefined;
    if (gap) problems.push(`WAL segment ${gap} is missing from ${ctx.settings.walArchive}: nothing after it can be recovered`);
    archiveDetails = { dir: ctx.settings.walArchive, segments: listing.segments.length, newestSegment: listing.newestName, newestArchivedAt: listing.newestArchivedAt };
  }
  const lastArchived = facts?.archiver.lastArchivedTime ?? null;
  const newest = [archiveNewest, lastArchived].filter((t): t is string => !!t).sort().at(-1) ?? null;
  return {
    provider: 'local',
    source: databaseUrl ? redactUrl(databaseUrl) : '(not set)',
    pgVersion: facts?.serverVersion ?? null,
    window: { oldest: backups[0]?.endedAt ?? null, newest, reachesNow: !!facts && problems.length === 0 },
    problems,
    details: {
      production: facts
        ? {
            reachable: true,
            walLevel: facts.walLevel,
            archiveMode: facts.archiveMode,
            archiveTimeoutSeconds: facts.archiveTimeoutSeconds,
            timeline: facts.timeline,
            currentWal: facts.currentWal,
            systemIdentifier: facts.systemIdentifier,
          }
        : { reachable: false },
      archiver: facts?.archiver ?? null,
      archive: archiveDetails ?? (ctx.settings.restoreCommand ? { restoreCommand: ctx.settings.restoreCommand } : null),
      backups: backups.map((b) => ({ id: b.id, endedAt: b.endedAt, endLsn: b.endLsn, bytes: b.bytes, pgVersion: b.pgVersion })),
      otherSystemBackups: allBackups.length - backups.length,
    },
  };
}
