import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { lsnToBigInt } from '../../time/index.js';

/** WAL segment file names: 8 hex digits of timeline, then the segment number split in two. */
const SEGMENT = /^[0-9A-F]{24}$/;

export interface SegmentName {
  timeline: number;
  /** Segment number within the timeline (LSN / segment size). */
  number: bigint;
}

export function parseSegmentName(name: string, segmentSize: number): SegmentName | undefined {
  if (!SEGMENT.test(name)) return undefined;
  const perXlogId = 0x1_0000_0000n / BigInt(segmentSize);
  return {
    timeline: parseInt(name.slice(0, 8), 16),
    number: BigInt(`0x${name.slice(8, 16)}`) * perXlogId + BigInt(`0x${name.slice(16, 24)}`),
  };
}

export function segmentFileName(timeline: number, number: bigint, segmentSize: number): string {
  const perXlogId = 0x1_0000_0000n / BigInt(segmentSize);
  const hex = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
  return hex(timeline) + hex(number / perXlogId) + hex(number % perXlogId);
}

export function segmentOfLsn(lsn: string, segmentSize: number): bigint {
  return lsnToBigInt(lsn) / BigInt(segmentSize);
}

export interface ArchiveListing {
  segments: string[];
  newestName: string | null;
  newestArchivedAt: string | null;
}

/** The WAL segments of a directory archive, sorted, with the time the newest one arrived. */
export async function listArchive(dir: string): Promise<ArchiveListing> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => SEGMENT.test(n)).sort();
  const newestName = names.at(-1) ?? null;
  let newestArchivedAt: string | null = null;
  if (newestName) newestArchivedAt = (await stat(join(dir, newestName))).mtime.toISOString();
  return { segments: names, newestName, newestArchivedAt };
}

/**
 * The first segment missing from a directory archive between `from` and `to` (inclusive,
 * same timeline or a later one), or undefined when the run is complete. A timeline switch
 * continues the numbering, so a segment counts as present on any timeline.
 */
export function firstMissingSegment(segments: readonly string[], from: bigint, to: bigint, segmentSize: number): bigint | undefined {
  const present = new Set<bigint>();
  for (const name of segments) {
    const seg = parseSegmentName(name, segmentSize);
    if (seg) present.add(seg.number);
  }
  for (let n = from; n <= to; n++) if (!present.has(n)) return n;
  return undefined;
}
