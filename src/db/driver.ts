// The driver choice lives apart from connect.ts so the CLI can set it without loading pg.

/**
 * How pitr reaches Postgres: `pg` is plain TCP; `ws` is Neon's serverless driver over a
 * WebSocket (for networks that block port 5432). Chosen once per process by the CLI.
 */
export type DriverName = 'pg' | 'ws';
export interface DriverSettings {
  driver: DriverName;
  /**
   * WebSocket proxy for `ws`, as a URL template with {host} and {port}, e.g.
   * `ws://127.0.0.1:8080/v1?address={host}:{port}`. Default: Neon's own proxy at wss://<host>/v2.
   */
  wsProxy?: string;
}
let driverSettings: DriverSettings = { driver: 'pg' };

export function useDriver(settings: DriverSettings): void {
  driverSettings = settings;
}

export function currentDriver(): DriverSettings {
  return driverSettings;
}
