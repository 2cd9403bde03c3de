import { refused } from '../errors.js';

/**
 * A typed confirmation: the user must type `expected` exactly. Prompts only on a TTY (callers
 * check ctx.interactive first); anything else refuses with exit 3.
 */
export async function confirmByTyping(expected: string, message: string): Promise<void> {
  const { input } = await import('@inquirer/prompts');
  const answer = await input({ message }).catch(() => '');
  if (answer.trim() !== expected) throw refused('not_confirmed', `not confirmed (expected "${expected}"): nothing was changed`);
}

/** One choice among a few, on a TTY (callers check ctx.interactive first). */
export async function chooseOne<T extends string>(message: string, choices: { value: T; name: string; description?: string }[]): Promise<T> {
  const { select } = await import('@inquirer/prompts');
  return select<T>({ message, choices });
}
