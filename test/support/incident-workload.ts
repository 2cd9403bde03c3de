import pg from 'pg';
import type { TestCluster } from './cluster.js';

/**
 * An incident among legitimate writes: inserts every few milliseconds, one bad DELETE of
 * "initial" rows across both partitions, then more inserts. Every write committed before the
 * bad transaction is mirrored into the database `expected`, which is therefore exactly
 * production just before the incident.
 */
export interface Incident {
  badXid: string;
  /** Commit time of the bad transaction (track_commit_timestamp), ISO with microseconds. */
  badCommit: string;
  badCommitLsn: string;
  deleted: number;
  /** A key of a row the bad transaction deleted. */
  deletedKey: { id: number; grp: number };
  expectedUrl: string;
}

const SCHEMA = `
  create table items(id int not null, grp int not null, note text not null, primary key (id, grp)) partition by list (grp);
  create table items_a partition of items for values in (0);
  create table items_b partition of items for values in (1);
  create table audit(id serial primary key, what text not null);`;

export async function loadInitial(prod: TestCluster): Promise<void> {
  await prod.query(`create database expected`);
  for (const url of [prod.url, prod.urlFor('expected')]) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(SCHEMA);
    await client.query(`insert into items select g, g % 2, 'initial' from generate_series(1, 300) g`);
    await client.end();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runIncident(prod: TestCluster, legitBefore = 40, legitAfter = 20): Promise<Incident> {
  const main = new pg.Client({ connectionString: prod.url });
  const mirror = new pg.Client({ connectionString: prod.urlFor('expected') });
  await main.connect();
  await mirror.connect();
  try {
    let id = 1000;
    const legit = async (alsoMirror: boolean) => {
      id++;
      const sql = `insert into items values ($1, $2, 'legit'); insert into audit(what) values ('insert ' || $1::text)`;
      // Two statements need the simple protocol: inline the number (ours, not user input).
      const text = sql.replace(/\$1::text/g, `'${id}'`).replace('$1', String(id)).replace('$2', String(id % 2));
      await main.query(text);
      if (alsoMirror) await mirror.query(text);
      await sleep(4);
    };
    for (let i = 0; i < legitBefore; i++) await legit(true);
    await main.query('begin');
    const { rows } = await main.query<{ xid: string }>(`select txid_current()::text as xid`);
    const deleted = (await main.query(`delete from items where note = 'initial' and id % 3 = 0`)).rowCount ?? 0;
    await main.query('commit');
    const badXid = rows[0]!.xid;
    const { rows: facts } = await main.query<{ at: string }>(
      `select to_char(pg_xact_commit_timestamp($1::xid) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at`,
      [badXid],
    );
    const lsnRow = await main.query<{ lsn: string }>(`select pg_current_wal_lsn()::text as lsn`);
    for (let i = 0; i < legitAfter; i++) await legit(false);
    await main.query(`select pg_switch_wal()`);
    return { badXid, badCommit: facts[0]!.at, badCommitLsn: lsnRow.rows[0]!.lsn, deleted, deletedKey: { id: 3, grp: 1 }, expectedUrl: prod.urlFor('expected') };
  } finally {
    await main.end();
    await mirror.end();
  }
}
