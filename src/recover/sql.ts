import { quoteIdent } from '../db/sql.js';

/** SQL fragments shared by the recovery and its undo. */
export const q = quoteIdent;
export const cols = (names: string[], alias?: string) => names.map((c) => (alias ? `${alias}.${q(c)}` : q(c))).join(', ');
export const keyMatch = (key: string[], a: string, b: string) => key.map((k) => `${a}.${q(k)} = ${b}.${q(k)}`).join(' and ');
/** The hash a row is recognised by: over the recovered columns, as text, like the diff's. */
export const rowHash = (names: string[], alias: string) => `hashtextextended(row(${cols(names, alias)})::text, 0)`;
