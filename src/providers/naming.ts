import { formatTarget, type PointInTime } from '../time/index.js';

/** Naming rules every provider shares: free names for new objects and how a target is written down. */

/** `base`, or `base-2`, `base-3`… when a name is taken. */
export function uniqueName(base: string, taken: Iterable<string>): string {
  const names = new Set(taken);
  let name = base;
  for (let n = 2; names.has(name); n++) name = `${base}-${n}`;
  return name;
}

/** A branch's target as recorded and shown: `lsn:<lsn>`, `xid:<xid>`, or the UTC instant. */
export function targetString(at: Exclude<PointInTime, { kind: 'snapshot' }>): string {
  return at.kind === 'lsn' ? `lsn:${at.lsn}` : at.kind === 'xid' ? `xid:${at.xid}` : formatTarget(at);
}
