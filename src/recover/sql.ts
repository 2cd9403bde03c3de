import { quoteIdent } from '../db/sql.js';

/** SQL fragments shared by the recovery and its undo. */
export const q = quoteIdent;
export const cols = (names: string[], alias?: string) => names.map((c) => (alias ? `${alias}.${q(c)}` : q(c))).join(', ');
export const keyMatch = (key: string[], a: string, b: string) => key.map((k) => `${a}.${q(k)} = ${b}.${q(k)}`).join(' and ');
/** A SQL string literal of a name. */
export const lit = (name: string) => `'${name.replace(/'/g, "''")}'`;
/** Constraint names in saved plans are quoted and qualified; plans from before that are bare names. */
export const constraintRef = (name: string) => (name.startsWith('"') ? name : q(name));
