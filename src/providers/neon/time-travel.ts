import { EndpointType } from '@neondatabase/api-client';
import { badInput } from '../../errors.js';
import { describePointInTime, formatTarget, type PointInTime } from '../../time/index.js';
import type { PointInTimeConnection } from '../types.js';
import { targetString } from '../naming.js';
import { NeonLookup, refuseXid, type NeonPoint } from './lookup.js';
import { findSnapshotOrFail, snapshotPoint } from './snapshots.js';

/** Reading production's past without a branch: Neon Time Travel. */

/**
 * A read-only connection to production as it was at `at`, without creating a branch (Neon Time
 * Travel): the branch's endpoint with `options=neon_timestamp:<ISO>` (or neon_lsn), addressed by
 * branch id instead of endpoint id, as neonctl does.
 */
export async function openPointInTime(n: NeonLookup, requested: PointInTime): Promise<PointInTimeConnection> {
  const project = await n.project();
  let at: NeonPoint;
  const given = refuseXid(requested);
  if (given.kind !== 'snapshot') at = given;
  else {
    // Time Travel reads production's history: the snapshot stands for a point in it.
    const { snapshot } = await findSnapshotOrFail(n, given.name);
    at = snapshotPoint(n, snapshot);
    if (at.kind === 'time' && at.at < n.window(project.history_retention_seconds).oldest) {
      throw badInput(
        'outside_history',
        `snapshot ${snapshot.name} (${describePointInTime(at)}) is older than the project's history window (${Math.round(project.history_retention_seconds / 3600)} h), so Time Travel cannot read it; make a branch from it instead: pitr --at snapshot:${snapshot.name}`,
      );
    }
  }
  n.checkWindow(at, project.history_retention_seconds);
  const source = await n.sourceBranch();
  const { database, role } = await n.databaseAndRole(source.id);
  const { endpoints } = await n.api.call('list endpoints', (c) => c.listProjectBranchEndpoints(n.projectId, source.id));
  const endpoint = endpoints.find((e) => e.type === EndpointType.ReadWrite) ?? endpoints[0];
  const url = new URL(await n.connectionUri(source.id, database, role));
  if (endpoint && url.hostname.startsWith(endpoint.id)) url.hostname = source.id + url.hostname.slice(endpoint.id.length);
  url.searchParams.set('options', at.kind === 'lsn' ? `neon_lsn:${at.lsn}` : `neon_timestamp:${formatTarget(at)}`);
  return { connectionUrl: url.toString(), readOnly: true, target: targetString(at) };
}
