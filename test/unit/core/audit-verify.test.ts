import { LocalAuditAnchors } from '../../../lambda/adapters/local-audit-anchors';
import { LocalAuditMac } from '../../../lambda/adapters/local-audit-mac';
import { AUDIT_GENESIS, AuditEvent, AuditEventInput, AuditTrail, auditMessage } from '../../../lambda/core/audit-chain';
import { verifyAuditTrail } from '../../../lambda/core/audit-verify';
import type { SealedSecret } from '../../../lambda/core/envelope';
import { AnchorExistsError, type AuditAnchor, type AuditAnchors, type StoredAuditAnchor } from '../../../lambda/core/ports';
import { sealedRowDigest } from '../../../lambda/core/sealed-digest';

const T = 'acme';
const at = new Date('2026-12-01T00:00:00Z');

function row(version: number, ciphertext = `c${version}`): SealedSecret {
  return {
    formatVersion: 1,
    algorithm: 'SR1-HKDF-SHA256-AES256GCM',
    keyArn: 'arn:aws:kms:eu-central-1:123456789012:key/k',
    wrappedKey: 'w',
    iv: 'i',
    ciphertext,
    tag: 't',
    region: 'eu-central-1',
    tenant: T,
    provider: 'openai',
    secret: 'default',
    version,
    sovereign: false,
    fingerprint: 'sha256:000000000000',
    createdAt: at.toISOString(),
  };
}

async function chain(inputs: AuditEventInput[]) {
  const mac = LocalAuditMac.inMemory();
  const anchors = new LocalAuditAnchors();
  const trail = new AuditTrail(mac, anchors);
  const events: AuditEvent[] = [];
  let head = { seq: 0, mac: AUDIT_GENESIS };
  for (const input of inputs) {
    const e = await trail.seal(T, head, input, at);
    await trail.anchor(e);
    events.push(e);
    head = { seq: e.seq, mac: e.mac };
  }
  return { mac, anchors, events, head, list: () => anchors.list(T) };
}

const ev = (type: string, details: AuditEventInput['details'] = {}): AuditEventInput => ({ type, actor: 'iam:op', details });
const stored = (r: SealedSecret) => ev('secret.stored', { provider: r.provider, name: r.secret, version: r.version, rowDigest: sealedRowDigest(r) });
const rotated = (r: SealedSecret) => ev('secret.rotated', { provider: r.provider, name: r.secret, version: r.version, rowDigest: sealedRowDigest(r) });

describe('verifyAuditTrail', () => {
  it('accepts an untouched trail with its anchors, head and rows', async () => {
    const c = await chain([ev('tenant.created'), stored(row(1)), rotated(row(2)), ev('policy.updated')]);
    const v = await verifyAuditTrail({ tenantId: T, events: c.events, anchors: await c.list(), head: c.head, secrets: [row(2)] }, c.mac);
    expect(v).toEqual({ ok: true, tenantId: T, events: 4, lastSeq: 4, anchoredThrough: 4, findings: [], unanchored: [] });
  });

  it('binds every field: tenant, seq, time, type, actor, details and the previous MAC', async () => {
    const c = await chain([ev('tenant.created'), ev('policy.updated', { keys: 'rpm' })]);
    const e = c.events[1];
    for (const forged of [
      { ...e, tenantId: 'other' },
      { ...e, at: '2027-01-01T00:00:00.000Z' },
      { ...e, type: 'policy.read' },
      { ...e, actor: 'iam:mallory' },
      { ...e, details: { keys: 'tpm' } },
      { ...e, details: { keys: 'rpm', extra: true } },
      { ...e, prevMac: 'f'.repeat(64) },
    ]) {
      expect(await c.mac.verify(auditMessage(forged), Buffer.from(e.mac, 'hex'))).toBe(false);
    }
    expect(await c.mac.verify(auditMessage(e), Buffer.from(e.mac, 'hex'))).toBe(true);
  });

  it('reports malformed events as not authentic instead of throwing', async () => {
    const c = await chain([ev('tenant.created'), ev('policy.updated')]);
    const broken = [c.events[0], { ...c.events[1], details: null as never, mac: 'zz' }];
    const v = await verifyAuditTrail({ tenantId: T, events: broken, anchors: await c.list() }, c.mac);
    expect(v.firstBad).toEqual(expect.objectContaining({ seq: 2, code: 'not_authentic' }));
  });

  it('names authentic events without an anchor but does not fail on them', async () => {
    const c = await chain([ev('tenant.created'), ev('policy.updated')]);
    const anchors = (await c.list()).filter((a) => a.seq === 1);
    const v = await verifyAuditTrail({ tenantId: T, events: c.events, anchors, head: c.head }, c.mac);
    expect([v.ok, v.unanchored, v.anchoredThrough]).toEqual([true, [2], 1]);
  });

  it('reports rewritten or malformed anchors and a head that does not match', async () => {
    const c = await chain([ev('tenant.created'), ev('policy.updated')]);
    const anchors: StoredAuditAnchor[] = (await c.list()).map((a) => (a.seq === 1 ? { ...a, laterVersions: 1 } : { ...a, anchor: undefined, malformed: true }));
    const v = await verifyAuditTrail({ tenantId: T, events: c.events, anchors, head: { seq: 2, mac: 'e'.repeat(64) } }, c.mac);
    expect(v.findings.map((f) => [f.seq, f.code])).toEqual([
      [1, 'anchor_rewritten'],
      [2, 'anchor_malformed'],
      [2, 'head_mismatch'],
    ]);
    const beyond = await verifyAuditTrail({ tenantId: T, events: c.events, anchors: await c.list(), head: { seq: 1, mac: c.events[0].mac } }, c.mac);
    expect(beyond.firstBad).toEqual(expect.objectContaining({ seq: 2, code: 'head_mismatch' }));
  });

  it('a tenant head ahead of the trail is a truncation even without anchors', async () => {
    const c = await chain([ev('tenant.created'), ev('policy.updated')]);
    const v = await verifyAuditTrail({ tenantId: T, events: c.events.slice(0, 1), anchors: [], head: c.head }, c.mac);
    expect(v.firstBad).toEqual(expect.objectContaining({ seq: 2, code: 'truncated' }));
    expect(v.firstBad!.message).toMatch(/the tenant's head is at #2/);
  });

  it('cross-checks secret rows: unrecorded, deleted-but-present, missing, and offboarded', async () => {
    const c = await chain([ev('tenant.created'), stored(row(1)), ev('secret.deleted', { provider: 'openai', name: 'default' })]);
    const base = { tenantId: T, events: c.events, anchors: await c.list(), head: c.head };
    expect((await verifyAuditTrail({ ...base, secrets: [row(1)] }, c.mac)).firstBad).toEqual(expect.objectContaining({ seq: 3, code: 'secret_unrecorded' }));
    const other = { ...row(1), provider: 'anthropic' };
    expect((await verifyAuditTrail({ ...base, secrets: [other] }, c.mac)).firstBad).toEqual({
      code: 'secret_unrecorded',
      message: 'secret row anthropic/default (version 1) was never recorded in the audit trail',
    });
    const kept = await chain([ev('tenant.created'), stored(row(1))]);
    const missing = await verifyAuditTrail({ tenantId: T, events: kept.events, anchors: await kept.list(), secrets: [] }, kept.mac);
    expect(missing.firstBad).toEqual(expect.objectContaining({ seq: 2, code: 'secret_missing' }));
    const off = await chain([ev('tenant.created'), stored(row(1)), ev('tenant.offboarded')]);
    expect((await verifyAuditTrail({ tenantId: T, events: off.events, anchors: await off.list(), secrets: [] }, off.mac)).ok).toBe(true);
  });

  it('compares the versions the tenant record holds with the trail', async () => {
    const c = await chain([ev('tenant.created'), stored(row(1)), rotated(row(2))]);
    const base = { tenantId: T, events: c.events, anchors: await c.list(), head: c.head, secrets: [row(2)] };
    expect((await verifyAuditTrail({ ...base, recordedVersions: { 'openai/default': 2 } }, c.mac)).ok).toBe(true);
    const v = await verifyAuditTrail({ ...base, recordedVersions: { 'openai/default': 1 } }, c.mac);
    expect(v.firstBad).toEqual(expect.objectContaining({ seq: 3, code: 'version_record_mismatch' }));
  });
});

describe('AuditTrail.anchor', () => {
  const event = async (trail: AuditTrail) => trail.seal(T, { seq: 0, mac: AUDIT_GENESIS }, ev('tenant.created'), at);

  it('retries a failed anchor write once, then reports it without throwing', async () => {
    const puts: AuditAnchor[] = [];
    const failing: AuditAnchors = {
      put: async (a) => {
        puts.push(a);
        throw new Error('S3 unavailable');
      },
      list: async () => [],
    };
    const reported: unknown[] = [];
    const trail = new AuditTrail(LocalAuditMac.inMemory(), failing, (err) => reported.push(err));
    await trail.anchor(await event(trail));
    expect([puts.length, reported.length]).toEqual([2, 1]);
  });

  it('reports an anchor that exists already (someone wrote this seq first) without retrying', async () => {
    const anchors = new LocalAuditAnchors();
    const reported: unknown[] = [];
    const trail = new AuditTrail(LocalAuditMac.inMemory(), anchors, (err) => reported.push(err));
    const e = await event(trail);
    await anchors.put({ tenantId: T, seq: 1, mac: 'f'.repeat(64), at: e.at });
    await trail.anchor(e);
    expect(reported).toEqual([expect.any(AnchorExistsError)]);
  });
});
