/**
 * How an anchor is named and serialized in any anchor store: one object per (tenant, seq), whose
 * name sorts by seq, and whose content repeats the name's tenant and seq so a copied object is caught.
 */
import type { AuditAnchor } from './ports';
import { CELL_AUDIT_ID } from './store';
import { isValidTenantId } from './token';

export const ANCHOR_PREFIX = 'audit-anchors/v1/';
const SEQ_DIGITS = 12;

/** `audit-anchors/v1/<tenant>/` */
export function anchorTenantPrefix(tenantId: string): string {
  return `${ANCHOR_PREFIX}${tenantId}/`;
}

/** `audit-anchors/v1/<tenant>/<seq, 12 digits>.json` */
export function anchorName(tenantId: string, seq: number): string {
  // A tenant's chain, or the cell's own (operator events such as pepper rotations).
  if (!isValidTenantId(tenantId) && tenantId !== CELL_AUDIT_ID) throw new Error('anchorName: invalid tenant id');
  if (!Number.isSafeInteger(seq) || seq < 1 || seq >= 10 ** SEQ_DIGITS) throw new Error('anchorName: invalid seq');
  return `${anchorTenantPrefix(tenantId)}${String(seq).padStart(SEQ_DIGITS, '0')}.json`;
}

/** The seq in an anchor's name under the tenant's prefix, or undefined if it is not one. */
export function seqOfAnchorName(tenantId: string, name: string): number | undefined {
  const prefix = anchorTenantPrefix(tenantId);
  if (!name.startsWith(prefix)) return undefined;
  const m = /^(\d{12})\.json$/.exec(name.slice(prefix.length));
  return m ? Number(m[1]) : undefined;
}

export function serializeAnchor(a: AuditAnchor): string {
  return JSON.stringify({ v: 1, tenantId: a.tenantId, seq: a.seq, mac: a.mac, at: a.at });
}

/** The anchor in `text`, if it is a well-formed anchor of (tenantId, seq); undefined otherwise. */
export function parseAnchor(text: string, tenantId: string, seq: number): AuditAnchor | undefined {
  try {
    const o = JSON.parse(text) as Record<string, unknown>;
    if (o.v !== 1 || o.tenantId !== tenantId || o.seq !== seq) return undefined;
    if (typeof o.mac !== 'string' || !/^[0-9a-f]{64}$/.test(o.mac) || typeof o.at !== 'string') return undefined;
    return { tenantId, seq, mac: o.mac, at: o.at };
  } catch {
    return undefined;
  }
}
