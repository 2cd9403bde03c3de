// src/time: points in time, durations, LSNs and time zones: parsing and formatting, all pure.
// Leaf: must not import anything of pitr but src/errors.ts (no database, no providers, no I/O).
// Everything else takes its times from here, so one rule reads and writes a point in time.
export type { PointInTime, ParseTimeOptions, ResolvedPointInTime } from './parse.js';
export { checkSnapshotName, parsePointInTime } from './parse.js';
export { parseDuration } from './duration.js';
export { formatUtc, formatCompactUtc, describePointInTime, formatTarget, formatPostgresTimestamp } from './format.js';
export { compareLsn, lsnToBigInt } from './lsn.js';
