/**
 * The anchor bucket as moto models S3 Object Lock (compliance mode, versioned): what an attempt to
 * overwrite or delete an anchor does there, and that the S3 adapter reports every such attempt.
 * moto does not evaluate IAM or bucket policies; the IAM simulation proves that no cell role may
 * make these calls at all (test/infra/iam-simulation.test.ts).
 */
import {
  DeleteObjectCommand,
  GetObjectLockConfigurationCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { anchorName } from '../../lambda/core/audit-anchor-format';
import { S3AuditAnchors } from '../../lambda/adapters/s3-audit-anchors';
import { provisionAudit } from '../../local/provision-cell';
import { awsClients, AwsTestClients } from '../support/aws-clients';
import { MotoServer, startMoto } from '../support/moto';

let moto: MotoServer;
let c: AwsTestClients;
let bucket: string;
let anchors: S3AuditAnchors;
const REGION = 'eu-central-1';
const first = { tenantId: 'acme', seq: 1, mac: 'a'.repeat(64), at: '2026-12-01T00:00:00.000Z' };
const key = anchorName('acme', 1);

beforeAll(async () => {
  moto = await startMoto();
  c = awsClients(moto.endpoint, REGION);
  ({ anchorBucket: bucket } = await provisionAudit(c.kms, c.s3, 'lock', REGION));
  anchors = new S3AuditAnchors(c.s3, bucket);
  await anchors.put(first);
});
afterAll(() => moto?.stop());

const versionsOf = async () => {
  const out = await c.s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: key }));
  return { versions: out.Versions ?? [], markers: out.DeleteMarkers ?? [] };
};

it('the bucket has Object Lock in compliance mode with a default retention', async () => {
  const cfg = await c.s3.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }));
  expect(cfg.ObjectLockConfiguration).toEqual({ ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: expect.objectContaining({ Mode: 'COMPLIANCE', Days: 1 }) } });
});

it('a conditional overwrite (If-None-Match: *) is refused with 412', async () => {
  await expect(
    c.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'forged', IfNoneMatch: '*' })),
  ).rejects.toMatchObject({ $metadata: { httpStatusCode: 412 } });
  expect((await versionsOf()).versions).toHaveLength(1);
});

it('deleting the locked version is refused by Object Lock (moto enforces compliance retention)', async () => {
  const [v] = (await versionsOf()).versions;
  await expect(c.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: v.VersionId }))).rejects.toMatchObject({
    $metadata: { httpStatusCode: 403 },
  });
  // Even with the governance bypass header: compliance mode has no bypass.
  await expect(
    c.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: v.VersionId, BypassGovernanceRetention: true })),
  ).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 } });
  expect((await versionsOf()).versions.map((x) => x.VersionId)).toEqual([v.VersionId]);
});

it('an unconditional overwrite and a delete marker (possible only without the bucket policy) leave the first version, and the adapter reports both', async () => {
  // moto does not apply the bucket policy that refuses PutObject without If-None-Match, so this
  // models an account administrator who removed it first.
  await c.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: JSON.stringify({ ...first, v: 1, mac: 'f'.repeat(64) }) }));
  await c.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  const { versions, markers } = await versionsOf();
  expect([versions.length, markers.length]).toEqual([2, 1]);
  expect(await anchors.list('acme')).toEqual([{ seq: 1, anchor: first, laterVersions: 2, malformed: false }]);
});
