/**
 * Stored policies are validated on every request, but they change rarely: the result of a
 * schema parse is kept by the exact JSON text of its input, so an unchanged policy is not run
 * through zod again. Only for non-secret configuration (policies, limits); never for key
 * material or anything derived from it.
 *
 * The text is an exact key only for plain JSON data: any other value (a class instance, a Set,
 * undefined, a non-finite number, -0) makes the input bypass the memo and parse as before. Results
 * (successes only) are deeply frozen, since every request that reads the policy shares them.
 */
import type { z } from 'zod';
import { BoundedMemo } from './bounded-memo';
import { deepFreeze } from './shared-rows';

const MAX_ENTRIES = 1_000;
const MAX_CHARS = 4 * 1024 * 1024;

class NotPlainJson extends Error {}

function plainJson(this: unknown, _key: string, v: unknown): unknown {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      if (!Number.isFinite(v) || Object.is(v, -0)) throw new NotPlainJson();
      return v;
    case 'object':
      if (v === null || Array.isArray(v) || Object.getPrototypeOf(v) === Object.prototype) return v;
      throw new NotPlainJson();
    default:
      throw new NotPlainJson();
  }
}

/** `schema.safeParse(value)`, memoized by the value's JSON text (see above). */
export function memoizedSafeParse<S extends z.ZodTypeAny>(schema: S, value: unknown): z.SafeParseReturnType<z.input<S>, z.output<S>> {
  let text: string;
  try {
    text = JSON.stringify(value, plainJson);
  } catch (err) {
    if (err instanceof NotPlainJson) return schema.safeParse(value);
    throw err;
  }
  let memo = memos.get(schema);
  if (!memo) memos.set(schema, (memo = new BoundedMemo(MAX_ENTRIES, MAX_CHARS)));
  let result = memo.get(text) as z.SafeParseReturnType<z.input<S>, z.output<S>> | undefined;
  if (result) return result;
  result = schema.safeParse(value);
  if (!result.success) return result; // a malformed row is rare and refused: not kept
  deepFreeze(result);
  // A bound on memory, not an eviction policy: in entries, and in characters of text (a valid
  // policy can be large: 1,000 of 400 KB would pin about a gigabyte).
  memo.set(text, result);
  return result;
}

const memos = new WeakMap<z.ZodTypeAny, BoundedMemo<unknown>>();
