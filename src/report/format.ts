/** Bytes for people: 1024-based, one decimal. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** Aligned columns for people; the first row is the header. */
export function renderTable(rows: readonly (readonly string[])[]): string {
  if (rows.length === 0) return '';
  // A loop, not Math.max(...): a timeline can have more rows than the call stack has room for arguments.
  const widths = rows[0]!.map((_, i) => rows.reduce((w, r) => Math.max(w, (r[i] ?? '').length), 0));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** Label/value lines, aligned. */
export function renderFields(fields: readonly (readonly [string, string | number | null | undefined])[]): string {
  const width = fields.reduce((w, [k]) => Math.max(w, k.length), 0);
  return fields
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `  ${k.padEnd(width)}  ${v ?? '-'}`)
    .join('\n');
}

export const formatCount = (x: number) => x.toLocaleString('en-US');
/** A Markdown table cell: no pipe or line break can break the row. */
export const markdownCell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
