import { z } from 'zod';
import { ApiError } from './http';

/** Validates input with a zod schema; the 400 names the fields at fault, never their values. */
export function validate<S extends z.ZodTypeAny>(schema: S, input: unknown, what = 'request body'): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : what}: ${messageOf(i)}`)
    .join('; ');
  throw new ApiError(400, 'invalid_request', `Invalid ${what}: ${problems}`);
}

/** zod's enum message echoes the received value; ours names only what is accepted. */
function messageOf(issue: z.ZodIssue): string {
  if (issue.code === 'invalid_enum_value') return `expected one of ${issue.options.map(String).join(', ')}`;
  return issue.message;
}
