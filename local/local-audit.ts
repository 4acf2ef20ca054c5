/**
 * The local gateway's audit key and anchors: the embedded adapters, in the state directory when
 * the gateway persists (audit-mac.key, audit-anchors/), in memory otherwise. One function, so
 * the gateway's backend wiring can change around it.
 */
import { join } from 'node:path';
import { LocalAuditAnchors } from '../lambda/adapters/local-audit-anchors';
import { LocalAuditMac } from '../lambda/adapters/local-audit-mac';
import { AuditTrail } from '../lambda/core/audit-chain';
import { errorFields, type Logger } from '../lambda/core/logger';

export function localAudit(stateDir: string | undefined, log: Logger) {
  const mac = stateDir ? LocalAuditMac.fromFile(join(stateDir, 'audit-mac.key')) : LocalAuditMac.inMemory();
  const anchors = new LocalAuditAnchors(stateDir);
  const trail = new AuditTrail(mac, anchors, (err, event) =>
    log.error('audit event not anchored', { tenantId: event.tenantId, seq: event.seq, ...errorFields(err) }),
  );
  return { mac, anchors, trail };
}
