/**
 * Reads what the audit verifier needs (events, anchors, secret rows, the tenant's head and
 * recorded versions) through the ports and verifies it. Shared by the admin and vault apps.
 */
import type { AuditEvent } from './audit-chain';
import { AuditVerification, verifyAuditTrail } from './audit-verify';
import type { AuditAnchors, AuditMac } from './ports';
import type { TenantStore } from './store';
import type { TenantRecord } from './tenant-model';

export interface AuditReadPorts {
  readonly mac: AuditMac;
  readonly anchors: AuditAnchors;
}

/** `provider#name` (META's slot) to `provider/name` (the verifier's); provider ids have no '#'. */
function recordedVersionsOf(tenant: TenantRecord): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [slot, entry] of Object.entries(tenant.secretVersions ?? {})) {
    const i = slot.indexOf('#');
    out[`${slot.slice(0, i)}/${slot.slice(i + 1)}`] = entry.version;
  }
  return out;
}

export async function readAuditVerification(
  store: Pick<TenantStore, 'listAudit' | 'listSecrets'>,
  ports: AuditReadPorts,
  tenant: TenantRecord,
): Promise<{ events: AuditEvent[]; verification: AuditVerification }> {
  const [events, anchors, secrets] = await Promise.all([store.listAudit(tenant.tenantId), ports.anchors.list(tenant.tenantId), store.listSecrets(tenant.tenantId)]);
  const verification = await verifyAuditTrail(
    {
      tenantId: tenant.tenantId,
      events,
      anchors,
      secrets,
      head: { seq: tenant.auditSeq, mac: tenant.auditHead },
      recordedVersions: recordedVersionsOf(tenant),
    },
    ports.mac,
  );
  return { events, verification };
}
