import { parsePostgresUrl } from '../../db/postgres-url.js';

export interface ConnectionParts {
  /** The URL without its password (safe for argv, which other users can read in `ps`). */
  url: string;
  password: string | undefined;
  user: string;
  database: string;
}

export function connectionParts(url: string): ConnectionParts {
  const parsed = parsePostgresUrl(url);
  const password = parsed.password ? decodeURIComponent(parsed.password) : undefined;
  parsed.password = '';
  return {
    url: parsed.toString(),
    password,
    user: decodeURIComponent(parsed.username) || process.env.PGUSER || 'postgres',
    database: decodeURIComponent(parsed.pathname.replace(/^\//, '')) || decodeURIComponent(parsed.username) || 'postgres',
  };
}

/**
 * The URL of a recovery instance: production's credentials and database (the instance is a copy
 * of production, roles included), on the loopback port pitr started it on. TLS options are
 * dropped because the instance listens on loopback only with ssl off.
 */
export function branchUrl(productionUrl: string, port: number): string {
  const parsed = parsePostgresUrl(productionUrl);
  parsed.hostname = '127.0.0.1';
  parsed.port = String(port);
  for (const key of [...parsed.searchParams.keys()]) {
    if (/^(ssl|host|hostaddr|port|target_session_attrs)/i.test(key)) parsed.searchParams.delete(key);
  }
  return parsed.toString();
}
