import { z } from 'zod';

/**
 * A playbook: named inputs and an ordered list of steps of registered types. Values may refer to
 * inputs and to earlier steps' outputs with `${{ inputs.name }}` / `${{ steps.id.field }}`.
 */
const identifier = z.string().regex(/^[a-z][a-z0-9_-]*$/i, 'must start with a letter and hold only letters, digits, - and _');
const text = z.string().min(1);

export const InputSchema = z.strictObject({
  /** `identifier`: a table name (`orders`, `sales.orders`, `"My Table"`), quoted wherever it is used and checked against the catalog. */
  type: z.enum(['string', 'identifier', 'time', 'number', 'boolean', 'list']),
  description: z.string().optional(),
  required: z.boolean().default(false),
  default: z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]).optional(),
});

/** `if`: the step runs only when this (after interpolation) is not empty, "false" or "0". */
const base = { id: identifier.optional(), name: z.string().optional(), if: z.string().optional() };

export const StepSchema = z.discriminatedUnion('type', [
  z.strictObject({ ...base, type: z.literal('create-branch'), with: z.strictObject({ at: text, ttl: text.optional(), name: text.optional() }) }),
  /**
   * `find`: runs `pitr when` and outputs `at` (the exact transaction or the last good instant)
   * for create-branch. With `given` non-empty it searches nothing and passes `given` on, so a
   * playbook can take an optional time input.
   */
  z.strictObject({
    ...base,
    type: z.literal('find'),
    with: z.strictObject({
      given: z.string().optional(),
      count: text.optional(),
      where: text.optional(),
      row: z.array(text).optional(),
      sql: text.optional(),
      since: text.optional(),
      until: text.optional(),
      precision: text.optional(),
      timeline: z.boolean().optional(),
    }),
  }),
  z.strictObject({
    ...base,
    type: z.literal('preview'),
    with: z
      .strictObject({
        branch: text.optional(),
        tables: z.array(text).optional(),
        schemaOnly: z.boolean().optional(),
        /** Fail when any compared table still shows these differences: the verification after a recovery. */
        failIf: z.array(z.enum(['missing', 'changed', 'extra'])).optional(),
      })
      .default({}),
  }),
  z.strictObject({
    ...base,
    type: z.literal('diff'),
    with: z.strictObject({
      table: text,
      branch: text.optional(),
      where: z.string().optional(),
      limit: z.number().int().positive().optional(),
      /** Fail the step (and the playbook) when production still lacks rows: the verification after a recovery. */
      failIfMissing: z.boolean().default(false),
    }),
  }),
  z.strictObject({
    ...base,
    type: z.literal('recover'),
    with: z.strictObject({
      tables: z.array(text).min(1),
      branch: text.optional(),
      mode: z.enum(['missing', 'changed', 'all']).default('missing'),
      where: z.string().optional(),
      cascade: z.boolean().default(false),
      deleteExtra: z.boolean().default(false),
      /** skip or fire: what user triggers on the written tables do (empty: there must be none). */
      triggers: z.string().optional(),
    }),
  }),
  z.strictObject({
    ...base,
    type: z.literal('restore-export'),
    /** from: a directory or s3:// prefix; export: a name (default: the newest that authenticates); into: an empty database. */
    with: z.strictObject({ from: text, export: z.string().optional(), into: text, jobs: z.number().int().min(1).max(64).optional() }),
  }),
  z.strictObject({ ...base, type: z.literal('restore-in-place'), with: z.strictObject({ at: text, preserveAs: text.optional() }) }),
  z.strictObject({
    ...base,
    type: z.literal('check'),
    with: z.strictObject({
      on: z.enum(['branch', 'production', 'database']),
      branch: text.optional(),
      /** With `on: database`: any postgres:// URL (a restored database). */
      url: text.optional(),
      sql: text,
      expect: z.union([z.string(), z.number(), z.boolean(), z.null()]),
    }),
  }),
  z.strictObject({ ...base, type: z.literal('confirm'), with: z.strictObject({ message: text }) }),
  z.strictObject({ ...base, type: z.literal('report'), with: z.strictObject({ title: text.optional() }).default({}) }),
]);

export const PlaybookSchema = z.strictObject({
  name: identifier,
  description: z.string().optional(),
  inputs: z.record(identifier, InputSchema).default({}),
  steps: z.array(StepSchema).min(1, 'a playbook needs at least one step'),
});

export type Playbook = z.infer<typeof PlaybookSchema>;
export type PlaybookStep = z.infer<typeof StepSchema>;
