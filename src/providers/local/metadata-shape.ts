/**
 * Checks the JSON files pitr itself writes (backup.json, branch.json, restore points) against
 * their declared fields. Plain code rather than zod: reading them is on the path of every
 * recovery branch, where zod's load time alone would be a tenth of pitr's overhead.
 */
export type FieldType = 'string' | 'number' | 'boolean' | 'string|null' | 'number|null' | readonly string[];

function fits(value: unknown, type: FieldType): boolean {
  if (Array.isArray(type)) return typeof value === 'string' && type.includes(value);
  switch (type) {
    case 'string|null':
      return value === null || typeof value === 'string';
    case 'number|null':
      return value === null || (typeof value === 'number' && Number.isFinite(value));
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    default:
      return typeof value === type;
  }
}

/**
 * The declared fields of `value` when every required one fits and every optional one present
 * fits (undeclared fields are dropped), else undefined. A missing optional field with a default
 * gets it.
 */
export function pickShape<T>(value: unknown, required: Record<string, FieldType>, optional: Record<string, FieldType> = {}, defaults: Record<string, unknown> = {}): T | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const source = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, type] of Object.entries(required)) {
    if (!fits(source[key], type)) return undefined;
    out[key] = source[key];
  }
  for (const [key, type] of Object.entries(optional)) {
    if (source[key] === undefined) {
      if (key in defaults) out[key] = defaults[key];
      continue;
    }
    if (!fits(source[key], type)) return undefined;
    out[key] = source[key];
  }
  return out as T;
}
