import { EndpointType } from '@neondatabase/api-client';
import { iso } from './operations.js';

/**
 * Request checks that need no project state. They run before anything is created, so a request
 * Neon would refuse never starts local work.
 */

/** A request Neon would refuse: becomes a GeneralError response with this status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;
/** Neon caps a branch's expiry at 30 days ahead. */
const MAX_EXPIRY_MS = 30 * 86_400_000;

export function isRfc3339(value: unknown): value is string {
  return typeof value === 'string' && RFC3339.test(value) && !Number.isNaN(Date.parse(value));
}

/** Why an instant is outside [now - retention, now], if it is. Neon's exact wording is unknown. */
export function outsideWindow(at: Date, retentionSeconds: number): string | undefined {
  const now = Date.now();
  const oldest = new Date(now - retentionSeconds * 1000);
  const window = `the project keeps ${retentionSeconds} s of history: from ${oldest.toISOString()} to now (${new Date(now).toISOString()})`;
  if (at.getTime() > now) return `timestamp ${at.toISOString()} is outside of the history retention window: it is in the future; ${window}`;
  if (at.getTime() < oldest.getTime()) return `timestamp ${at.toISOString()} is outside of the history retention window: ${window}`;
  return undefined;
}

/** A valid future expires_at, normalised to seconds as Neon stores it. */
export function checkExpiry(value: unknown): string {
  if (!isRfc3339(value)) throw new ApiError(400, 'expires_at must be an RFC 3339 timestamp, e.g. 2025-06-09T18:02:16Z');
  const at = Date.parse(value);
  if (at <= Date.now()) throw new ApiError(400, `expires_at ${value} must be in the future`);
  if (at > Date.now() + MAX_EXPIRY_MS) throw new ApiError(400, `expires_at ${value} is more than 30 days ahead`);
  return iso(at);
}

/** "Each branch supports one read-write endpoint and multiple read-only endpoints." */
export function checkEndpointTypes(types: unknown[]): EndpointType[] {
  const valid = Object.values(EndpointType) as string[];
  for (const type of types) if (!valid.includes(type as string)) throw new ApiError(400, `endpoint type must be one of ${valid.join(', ')}`);
  if (types.filter((t) => t === EndpointType.ReadWrite).length > 1) throw new ApiError(400, 'a branch supports only one read_write endpoint');
  return types as EndpointType[];
}

export function checkAnnotation(value: unknown): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!value || typeof value !== 'object' || Object.values(value).some((v) => typeof v !== 'string')) {
    throw new ApiError(400, 'annotation_value must be an object of string values');
  }
  return { ...(value as Record<string, string>) };
}
