/**
 * Evidence of every secret the router opened: the exact KMS encryption context of each Decrypt
 * and when it was asked for. It goes on the request's usage record, so CloudTrail's Decrypt events
 * (which log the encryption context) and the usage table can be joined on the same identifiers.
 */
import type { DataKeyService, EncryptionContext } from '../ports';
import { isoTime } from '../iso-time';

export interface KeyUse {
  /** The encryption context sent with the Decrypt: app, region, tenant, provider, secret, version. */
  readonly context: EncryptionContext;
  /** ISO time at which the Decrypt was sent. */
  readonly at: string;
}

/** A per-request view of the data-key service that records each Decrypt it forwards. */
export function recordingDataKeys(inner: DataKeyService, uses: KeyUse[], now: () => number): DataKeyService {
  const record = (context: EncryptionContext): void => {
    // A frozen context (envelope.ts hands out one per identity) cannot change after this: kept as is.
    uses.push({ context: Object.isFrozen(context) ? context : { ...context }, at: isoTime(now()) });
  };
  const view: DataKeyService = {
    generateDataKey: (context) => inner.generateDataKey(context),
    decryptDataKey: (wrapped, context, keyArn) => {
      record(context);
      return inner.decryptDataKey(wrapped, context, keyArn);
    },
  };
  // The in-process form only where the inner service has one (the local root key), recorded alike.
  if (inner.decryptDataKeyNow !== undefined) {
    view.decryptDataKeyNow = (wrapped, context, keyArn) => {
      record(context);
      return inner.decryptDataKeyNow!(wrapped, context, keyArn);
    };
  }
  return view;
}
