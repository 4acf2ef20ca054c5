/**
 * The audit chain: per tenant, event n carries MAC_k(digest(tenant, n, event fields, MAC of n-1))
 * under the cell's audit key k (KMS HMAC), which table writers cannot use. Every adapter of the
 * tenant store seals events here and only maps them onto its storage.
 */
import { createHash } from 'node:crypto';
import { canonicalEncode } from './canonical';
import type { AuditAnchor, AuditAnchors, AuditMac } from './ports';

/** The MAC that precedes the first event of every tenant's chain. */
export const AUDIT_GENESIS = '0'.repeat(64);
const AUDIT_DOMAIN = 'sovereign-router/audit-event/v2';

export type AuditDetails = Readonly<Record<string, string | number | boolean>>;

/** A control-plane event. Details are non-secret by construction (ids, counts, names, digests). */
export interface AuditEventInput {
  readonly type: string;
  /** Who did it: `token:<tokenId>` or `iam:<ARN>`. */
  readonly actor: string;
  readonly details: AuditDetails;
}

export interface AuditEvent extends AuditEventInput {
  readonly tenantId: string;
  readonly seq: number;
  readonly at: string;
  /** hex MAC of the previous event (AUDIT_GENESIS for seq 1). */
  readonly prevMac: string;
  /** hex HMAC-SHA256 under the audit key of auditMessage(this event). */
  readonly mac: string;
}

/** The head of a tenant's chain as the tenant record holds it. */
export interface AuditHead {
  readonly seq: number;
  readonly mac: string;
}

function canonicalDetails(details: AuditDetails): string {
  if (typeof details !== 'object' || details === null) throw new Error('audit details must be an object');
  return JSON.stringify(
    Object.keys(details)
      .sort()
      .map((k) => [k, details[k]]),
  );
}

/**
 * The 32 bytes the audit key MACs: SHA-256 of the canonical, length-prefixed encoding of every
 * field but the MAC itself. Hashing first keeps the KMS message small whatever the details.
 */
export function auditMessage(e: Omit<AuditEvent, 'mac'>): Buffer {
  const encoded = canonicalEncode(AUDIT_DOMAIN, [
    ['tenantId', String(e.tenantId)],
    ['seq', String(e.seq)],
    ['at', String(e.at)],
    ['type', String(e.type)],
    ['actor', String(e.actor)],
    ['details', canonicalDetails(e.details)],
    ['prevMac', String(e.prevMac)],
  ]);
  return createHash('sha256').update(encoded).digest();
}

/** The anchor that records `event` as its tenant's head at that seq. */
export function anchorOf(event: AuditEvent): AuditAnchor {
  return { tenantId: event.tenantId, seq: event.seq, mac: event.mac, at: event.at };
}

/**
 * Seals events with the audit key and anchors committed heads. Shared by every tenant-store
 * adapter: they call `seal` before their transaction and `anchor` after it committed.
 */
export class AuditTrail {
  constructor(
    private readonly mac: AuditMac,
    private readonly anchors: AuditAnchors,
    /** Called when a committed event could not be anchored (the verifier reports it unanchored). */
    private readonly onAnchorError: (err: unknown, event: AuditEvent) => void = () => undefined,
  ) {}

  /** The next link of the chain whose head is `head`. */
  async seal(tenantId: string, head: AuditHead, input: AuditEventInput, at: Date): Promise<AuditEvent> {
    const base = {
      type: input.type,
      actor: input.actor,
      details: { ...input.details },
      tenantId,
      seq: head.seq + 1,
      at: at.toISOString(),
      prevMac: head.mac,
    };
    const mac = await this.mac.generate(auditMessage(base));
    return { ...base, mac: mac.toString('hex') };
  }

  /**
   * Anchors a committed event. The change has landed whatever happens here, so a failure is
   * reported (and retried once) rather than thrown: the caller's change must not look failed.
   */
  async anchor(event: AuditEvent): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.anchors.put(anchorOf(event));
        return;
      } catch (err) {
        if ((err as Error)?.name === 'AnchorExistsError' || attempt >= 1) {
          this.onAnchorError(err, event);
          return;
        }
      }
    }
  }
}
