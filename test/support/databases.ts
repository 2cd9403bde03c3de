import pg from 'pg';
import { quoteIdent } from '../../src/db/sql.js';
import type { TestCluster } from './cluster.js';

/**
 * Databases side by side in one test cluster: production, a "branch" and an expected database,
 * each a copy of a base made with CREATE DATABASE … TEMPLATE, so a test can build the expected
 * state by hand (never through pitr) and compare checksums.
 */
export async function copyDatabase(cluster: TestCluster, template: string, name: string): Promise<string> {
  await cluster.query(`create database ${quoteIdent(name)} template ${quoteIdent(template)}`);
  return cluster.urlFor(name);
}

export async function sql(url: string, text: string): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query(text);
    return (Array.isArray(result) ? result.at(-1) : result).rows;
  } finally {
    await client.end();
  }
}
