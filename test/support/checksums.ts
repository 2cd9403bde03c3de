import pg from 'pg';

/** Per-table row count and hash of every row: equal checksums mean equal tables. */
export async function tableChecksums(url: string): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`set extra_float_digits = 3; set TimeZone = 'UTC'; set DateStyle = 'ISO, YMD'`);
    const { rows: tables } = await client.query(
      `select format('%I.%I', n.nspname, c.relname) as t from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind in ('r', 'p') and not c.relispartition and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_%' order by 1`,
    );
    const out: Record<string, string> = {};
    for (const { t } of tables) {
      const { rows } = await client.query(`select count(*) || ':' || coalesce(sum(hashtextextended(x::text, 0)), 0) as c from ${t} x`);
      out[t] = rows[0].c;
    }
    return out;
  } finally {
    await client.end();
  }
}
