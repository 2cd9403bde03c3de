import { parsePostgresUrl } from './postgres-url.js';

/**
 * libpq variables that say where to connect and as whom: cleared before a URL's own are set, so
 * a stray PGHOST or PGSERVICE in the environment can never send a child somewhere else. TLS
 * files, PGPASSFILE and the like are left for the user's setup.
 */
const TARGET_VARIABLES = ['PGHOST', 'PGHOSTADDR', 'PGPORT', 'PGUSER', 'PGPASSWORD', 'PGDATABASE', 'PGSERVICE', 'PGSERVICEFILE', 'PGTARGETSESSIONATTRS', 'PGLOADBALANCEHOSTS', 'PGREQUIREAUTH'];

export function cleanPgEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of TARGET_VARIABLES) delete env[k];
  return env;
}

const LIBPQ_PARAMS: Record<string, string> = {
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  sslcrl: 'PGSSLCRL',
  sslcrldir: 'PGSSLCRLDIR',
  sslsni: 'PGSSLSNI',
  sslnegotiation: 'PGSSLNEGOTIATION',
  requiressl: 'PGREQUIRESSL',
  channel_binding: 'PGCHANNELBINDING',
  gssencmode: 'PGGSSENCMODE',
  krbsrvname: 'PGKRBSRVNAME',
  application_name: 'PGAPPNAME',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  options: 'PGOPTIONS',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
  load_balance_hosts: 'PGLOADBALANCEHOSTS',
  hostaddr: 'PGHOSTADDR',
  host: 'PGHOST',
  port: 'PGPORT',
  user: 'PGUSER',
  password: 'PGPASSWORD',
  dbname: 'PGDATABASE',
  passfile: 'PGPASSFILE',
  service: 'PGSERVICE',
};

/**
 * The libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, …) for a
 * postgres:// URL, on top of the current environment minus its connection-target PG* settings. Client tools
 * get their connection this way because a command line is visible to every user in `ps`.
 */
export function libpqEnvironment(url: string): NodeJS.ProcessEnv {
  const u = parsePostgresUrl(url);
  const env = cleanPgEnvironment();
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host) env.PGHOST = decodeURIComponent(host);
  if (u.port) env.PGPORT = u.port;
  if (u.username) env.PGUSER = decodeURIComponent(u.username);
  if (u.password) env.PGPASSWORD = decodeURIComponent(u.password);
  const db = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (db) env.PGDATABASE = db;
  for (const [param, value] of u.searchParams) {
    const name = LIBPQ_PARAMS[param.toLowerCase()];
    if (name) env[name] = value;
    // node-postgres spellings that libpq does not know
    else if (param === 'ssl' && /^(1|true|require)$/i.test(value)) env.PGSSLMODE ??= 'require';
  }
  // node-postgres accepts sslmode=no-verify (TLS without certificate checks): libpq's "require".
  if (env.PGSSLMODE === 'no-verify') env.PGSSLMODE = 'require';
  return env;
}
