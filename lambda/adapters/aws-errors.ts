/**
 * Reading AWS SDK v3 errors without trusting their messages: adapters map the error *name* to their
 * own typed errors and never copy an SDK message (it can echo request parameters) into theirs.
 */

/** The service error code (e.g. 'InvalidCiphertextException'), or the JS error name. */
export function awsErrorName(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const name = (err as { name?: unknown }).name;
  return typeof name === 'string' ? name : undefined;
}

/** The AWS request id of a failed call, safe to log for support cases. */
export function awsRequestId(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const metadata = (err as { $metadata?: { requestId?: unknown } }).$metadata;
  return typeof metadata?.requestId === 'string' ? metadata.requestId : undefined;
}
