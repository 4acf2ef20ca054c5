/**
 * One contract for every AuditAnchors adapter: S3 with Object Lock (against moto) and the embedded
 * store (files, memory). An anchor is written once and never replaced through the port.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalAuditAnchors } from '../../lambda/adapters/local-audit-anchors';
import { S3AuditAnchors } from '../../lambda/adapters/s3-audit-anchors';
import { AnchorExistsError, type AuditAnchor, type AuditAnchors } from '../../lambda/core/ports';
import { awsClients } from '../support/aws-clients';
import { MotoServer, startMoto } from '../support/moto';
import { provisionAudit } from '../../local/provision-cell';

let moto: MotoServer;
let dir: string;
beforeAll(async () => {
  moto = await startMoto();
  dir = mkdtempSync(join(tmpdir(), 'sr-anchors-'));
});
afterAll(async () => {
  await moto?.stop();
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
async function s3Anchors(): Promise<AuditAnchors> {
  const { kms, s3 } = awsClients(moto.endpoint, 'eu-central-1');
  const { anchorBucket } = await provisionAudit(kms, s3, `contract-${++n}`, 'eu-central-1');
  return new S3AuditAnchors(s3, anchorBucket);
}

const adapters: [string, () => Promise<AuditAnchors>][] = [
  ['S3 Object Lock (moto)', s3Anchors],
  ['embedded, files', async () => new LocalAuditAnchors(join(dir, `d${++n}`))],
  ['embedded, in memory', async () => new LocalAuditAnchors()],
];

const anchor = (tenantId: string, seq: number, fill = 'a'): AuditAnchor => ({ tenantId, seq, mac: fill.repeat(64), at: '2026-12-01T00:00:00.000Z' });

describe.each(adapters)('AuditAnchors contract: %s', (_name, make) => {
  it('lists what was put, ascending by seq, one tenant at a time', async () => {
    const anchors = await make();
    for (const seq of [2, 1, 10]) await anchors.put(anchor('acme', seq));
    await anchors.put(anchor('acme2', 1, 'b'));
    const listed = await anchors.list('acme');
    expect(listed).toEqual([1, 2, 10].map((seq) => ({ seq, anchor: anchor('acme', seq), laterVersions: 0, malformed: false })));
    expect(await anchors.list('acme2')).toEqual([{ seq: 1, anchor: anchor('acme2', 1, 'b'), laterVersions: 0, malformed: false }]);
    expect(await anchors.list('nobody')).toEqual([]);
  });

  it('never replaces an anchor: a second put of the same (tenant, seq) fails and the first stays', async () => {
    const anchors = await make();
    await anchors.put(anchor('acme', 1));
    await expect(anchors.put(anchor('acme', 1, 'f'))).rejects.toBeInstanceOf(AnchorExistsError);
    expect(await anchors.list('acme')).toEqual([{ seq: 1, anchor: anchor('acme', 1), laterVersions: 0, malformed: false }]);
  });

  it('refuses names that are not a tenant id and a positive seq', async () => {
    const anchors = await make();
    await expect(anchors.put(anchor('../etc', 1))).rejects.toThrow(/invalid tenant id/);
    await expect(anchors.put(anchor('acme', 0))).rejects.toThrow(/invalid seq/);
    await expect(anchors.put(anchor('acme', 1.5))).rejects.toThrow(/invalid seq/);
  });
});
