import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { makeTempRoot, localEnv, startCluster, type TestCluster } from '../support/cluster.js';
import { processesUsing, runPitr } from '../support/cli.js';
import { tableChecksums } from '../support/checksums.js';
import { loadInitial, runIncident, type Incident } from '../support/incident-workload.js';

/**
 * Finding the incident on the local provider, through the built CLI and real WAL replay: a
 * workload of inserts every few ms with one bad DELETE in the middle.
 */
describe('pitr when / --at xid: on the local provider', () => {
  let prod: TestCluster;
  let work: string;
  let env: Record<string, string>;
  let incident: Incident;

  beforeAll(async () => {
    prod = await startCluster({ archive: true, settings: { track_commit_timestamp: 'on' } });
    work = await makeTempRoot('pitr-when-');
    env = localEnv(prod, work);
    await loadInitial(prod);
    const backup = await runPitr(['backup', '--json'], env);
    expect(backup.code, backup.stderr).toBe(0);
    incident = await runIncident(prod);
  });

  afterAll(async () => {
    await prod?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('--at xid:<bad> branches with every commit before the bad transaction and none of it', async () => {
    const r = await runPitr(['--at', `xid:${incident.badXid}`, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.target).toBe(`xid:${incident.badXid}`);
    const branchUrl: string = r.json.connectionUrl;
    const expected = await tableChecksums(incident.expectedUrl);
    expect(await tableChecksums(branchUrl)).toEqual(expected);
    expect(await tableChecksums(prod.url)).not.toEqual(expected);
    const del = await runPitr(['branches', 'delete', r.json.id, '--json'], env);
    expect(del.code, del.stderr).toBe(0);
    expect(await processesUsing(work)).toEqual([]);
  }, 120_000);

  it('refuses a malformed xid with one line, exit 2', async () => {
    const r = await runPitr(['--at', 'xid:12ab'], env);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('not a valid transaction id');
  });
});
