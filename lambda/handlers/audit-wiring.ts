import type { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { KmsAuditMac } from '../adapters/kms-audit-mac';
import { S3AuditAnchors } from '../adapters/s3-audit-anchors';
import { AuditTrail } from '../core/audit-chain';
import { auditConfigOf, CellConfig } from '../core/cell-config';
import { errorFields, type Logger } from '../core/logger';
import { clientConfig } from './aws-clients';

/** The audit key and anchor bucket of a function that appends to (and verifies) the audit trail. */
export function cellAudit(config: CellConfig, kms: KMSClient, log: Logger) {
  const { keyArn, anchorBucket } = auditConfigOf(config);
  // Only the functions that append or verify load the S3 client; the router never imports this file.
  const s3 = new S3Client(clientConfig(config.region, config.requestDeadlineMs));
  const mac = new KmsAuditMac(kms, keyArn);
  const anchors = new S3AuditAnchors(s3, anchorBucket);
  const trail = new AuditTrail(mac, anchors, (err, event) =>
    log.error('audit event not anchored', { tenantId: event.tenantId, seq: event.seq, ...errorFields(err) }),
  );
  return { mac, anchors, trail };
}
