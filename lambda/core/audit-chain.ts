import { createHash } from 'node:crypto';
import { canonicalEncode } from './canonical';

/** Hash that precedes the first event of every tenant's chain. */
export const AUDIT_GENESIS = '0'.repeat(64);
const AUDIT_DOMAIN = 'sovereign-router/audit-event/v1';

/** A control-plane event. Details are non-secret by construction (ids, counts, names). */
export interface AuditEventInput {
  readonly type: string;
  /** Who did it: `token:<tokenId>` or an IAM ARN. */
  readonly actor: string;
  readonly details: Readonly<Record<string, string | number | boolean>>;
}

export interface AuditEvent extends AuditEventInput {
  readonly tenantId: string;
  readonly seq: number;
  readonly at: string;
  readonly prevHash: string;
  readonly hash: string;
}

function stable(details: AuditEventInput['details']): string {
  return JSON.stringify(Object.keys(details).sort().map((k) => [k, details[k]]));
}

export function auditHash(e: Omit<AuditEvent, 'hash'>): string {
  const encoded = canonicalEncode(AUDIT_DOMAIN, [
    ['tenantId', e.tenantId],
    ['seq', String(e.seq)],
    ['at', e.at],
    ['type', e.type],
    ['actor', e.actor],
    ['details', stable(e.details)],
    ['prevHash', e.prevHash],
  ]);
  return createHash('sha256').update(encoded).digest('hex');
}

/** The next link of a chain whose head is (seq, hash). */
export function nextAuditEvent(
  tenantId: string,
  head: { seq: number; hash: string },
  input: AuditEventInput,
  at: Date,
): AuditEvent {
  const base = { ...input, tenantId, seq: head.seq + 1, at: at.toISOString(), prevHash: head.hash };
  return { ...base, hash: auditHash(base) };
}

export interface AuditVerification {
  readonly ok: boolean;
  readonly events: number;
  /** First sequence number at which the chain is broken. */
  readonly brokenAt?: number;
  readonly reason?: string;
}

/**
 * Verifies a tenant's chain from genesis. With the head recorded on the tenant, it also detects
 * deletion of the newest events, which a chain alone cannot.
 */
export function verifyAuditChain(events: readonly AuditEvent[], head?: { seq: number; hash: string }): AuditVerification {
  let prev = { seq: 0, hash: AUDIT_GENESIS };
  const sorted = [...events].sort((a, b) => a.seq - b.seq);
  for (const e of sorted) {
    if (e.seq !== prev.seq + 1) return { ok: false, events: events.length, brokenAt: prev.seq + 1, reason: 'missing event' };
    if (e.prevHash !== prev.hash) return { ok: false, events: events.length, brokenAt: e.seq, reason: 'previous hash does not match' };
    const { hash, ...rest } = e;
    if (auditHash(rest) !== hash) return { ok: false, events: events.length, brokenAt: e.seq, reason: 'event was modified' };
    prev = { seq: e.seq, hash };
  }
  if (head && (head.seq !== prev.seq || head.hash !== prev.hash)) {
    return { ok: false, events: events.length, brokenAt: prev.seq + 1, reason: 'events after the last one present were deleted' };
  }
  return { ok: true, events: events.length };
}
