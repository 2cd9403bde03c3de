export type { PointInTime, ParseTimeOptions, ResolvedPointInTime } from './parse.js';
export { checkSnapshotName, parsePointInTime } from './parse.js';
export { parseDuration } from './duration.js';
export { formatUtc, formatCompactUtc, describePointInTime, formatTarget, formatPostgresTimestamp } from './format.js';
export { compareLsn, lsnToBigInt } from './lsn.js';
