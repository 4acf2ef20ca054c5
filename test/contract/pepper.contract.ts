/**
 * PepperSource / PepperRotator contract, and the store side of a pepper upgrade
 * (TokenVerifierMover on both stores, the token inventory, the cell's audit chain): a stable
 * pepper of at least 32 bytes handed out as a copy; versions that count up; a rotation from a
 * stale version (or a second concurrent one) that changes nothing; a record that moves to its new
 * verifier only if it is still exactly as read, so a revoked token never comes back.
 */
import { randomBytes } from 'node:crypto';
import { MIN_PEPPER_BYTES } from '../../lambda/adapters/secrets-manager-pepper';
import type { AuditEventInput } from '../../lambda/core/audit-chain';
import { PepperRotationConflict, type PepperRotator } from '../../lambda/core/ports';
import { CELL_AUDIT_ID } from '../../lambda/core/store';
import { BackendFactory, ContractBackend, freshTenantId } from './backend';
import { tenantRecord, tokenRecord } from './tenant-store.contract';

const event = (type: string): AuditEventInput => ({ type, actor: 'contract-test', details: { n: 1 } });
const hex = () => randomBytes(32).toString('hex');

export function pepperContract(name: string, factory: BackendFactory): void {
  describe(`PepperSource contract: ${name}`, () => {
    let b: ContractBackend;
    let rotator: PepperRotator;
    beforeAll(() => {
      b = factory();
      rotator = b.pepper as unknown as PepperRotator;
      expect(typeof rotator.rotate).toBe('function');
    });

    test('the same pepper every time, long enough, and a caller wiping its copy does not wipe the source', async () => {
      const first = await b.pepper.getPepper();
      expect(first.length).toBeGreaterThanOrEqual(MIN_PEPPER_BYTES);
      const keep = Buffer.from(first);
      first.fill(0);
      const second = await b.pepper.getPepper();
      expect(second.equals(keep)).toBe(true);
    });

    test('getPeppers: current is getPepper, copies, and nothing is issued outside current/previous', async () => {
      const ring = await b.pepper.getPeppers();
      expect(ring.current.pepper.equals(await b.pepper.getPepper())).toBe(true);
      expect(ring.current.version).toBeGreaterThanOrEqual(1);
      expect([ring.current.version, ring.previous?.version]).toContain(ring.issuing);
      ring.current.pepper.fill(0);
      expect((await b.pepper.getPepper()).equals(Buffer.alloc(ring.current.pepper.length))).toBe(false);
    });

    test('rotate: version + 1 with new bytes becomes current, the old current is previous; a stale rotation conflicts and changes nothing', async () => {
      const before = await b.pepper.getPeppers();
      const rotated = await rotator.rotate(before.current.version);
      expect(rotated.version).toBe(before.current.version + 1);
      expect(Number.isNaN(Date.parse(rotated.rotatedAt))).toBe(false);
      const after = await b.pepper.getPeppers();
      expect(after.current.version).toBe(rotated.version);
      expect(after.previous?.version).toBe(before.current.version);
      expect(after.previous?.pepper.equals(before.current.pepper)).toBe(true);
      expect(after.current.pepper.equals(before.current.pepper)).toBe(false);
      expect(after.current.pepper.length).toBeGreaterThanOrEqual(MIN_PEPPER_BYTES);
      expect(after.rotatedAt).toBe(rotated.rotatedAt);
      expect([after.current.version, after.previous?.version]).toContain(after.issuing);
      expect((await b.pepper.getPepper()).equals(after.current.pepper)).toBe(true);

      const err = await rotator.rotate(before.current.version).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PepperRotationConflict);
      expect((err as PepperRotationConflict).currentVersion).toBe(after.current.version);
      expect((await b.pepper.getPeppers()).current.pepper.equals(after.current.pepper)).toBe(true);
    });

    test('peppersNow, when it answers, is what getPeppers gives (versions, bytes, issuing), as copies; after a rotation never the old ring', async () => {
      const same = async () => {
        const ring = await b.pepper.getPeppers();
        const now = b.pepper.peppersNow?.();
        if (now === undefined) return;
        expect(now.current.version).toBe(ring.current.version);
        expect(now.current.pepper.equals(ring.current.pepper)).toBe(true);
        expect(now.previous?.version).toBe(ring.previous?.version);
        expect(now.previous === undefined || now.previous.pepper.equals(ring.previous!.pepper)).toBe(true);
        expect(now.issuing).toBe(ring.issuing);
        // A copy: wiping it (as tokenVerifiers does) leaves the source whole.
        now.current.pepper.fill(0);
        expect((await b.pepper.getPeppers()).current.pepper.equals(ring.current.pepper)).toBe(true);
      };
      await same();
      const before = await b.pepper.getPeppers();
      await rotator.rotate(before.current.version);
      const after = b.pepper.peppersNow?.();
      if (after !== undefined) expect(after.current.version).toBe(before.current.version + 1);
      await same();
    });

    test('two rotations from the same version at once: exactly one lands; the version before previous is no longer offered', async () => {
      const before = await b.pepper.getPeppers();
      const results = await Promise.allSettled([rotator.rotate(before.current.version), rotator.rotate(before.current.version)]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(rejected.reason).toBeInstanceOf(PepperRotationConflict);
      const after = await b.pepper.getPeppers();
      expect(after.current.version).toBe(before.current.version + 1);
      expect(after.previous?.version).toBe(before.current.version);
      // Only one overlap: what was previous before is gone.
      expect([after.current.version, after.previous?.version]).not.toContain(before.previous?.version);
    });
  });

  describe(`Token verifier move contract (on-use pepper upgrade): ${name}`, () => {
    let b: ContractBackend;
    beforeAll(() => {
      b = factory();
    });

    async function tenantWithInvoke(): Promise<{ id: string; item: Record<string, unknown> }> {
      const id = freshTenantId('pv');
      await b.store.createTenant(tenantRecord(id, b.region), tokenRecord(id, 'tenant-admin', 'admin0'), event('tenant.created'));
      const inv = { ...tokenRecord(id, 'invoke', 'inv0'), label: 'app', limits: { rpm: 7 } };
      await b.store.putToken(inv, event('token.created'));
      return { id, item: (await b.store.getToken(inv.verifier)) as unknown as Record<string, unknown> };
    }

    for (const side of ['tenant store', 'router store'] as const) {
      const mover = () => (side === 'tenant store' ? b.store : b.routerStore);

      test(`${side}: an unchanged record moves to its new verifier with its version; the old key is gone; nothing else changes`, async () => {
        const { id, item } = await tenantWithInvoke();
        const to = { version: 2, verifier: hex() };
        expect(await mover().moveTokenVerifier(item, to)).toBe(true);
        expect(await b.store.getToken(String(item.verifier))).toBeUndefined();
        const { verifier: _v, ...rest } = item;
        expect(await b.store.getToken(to.verifier)).toEqual({ ...rest, verifier: to.verifier, pepperVersion: 2 });
        expect((await b.store.listTokens(id)).map((t) => t.tokenId)).toEqual(['admin0', 'inv0']);
        // Moving again from the stale item: the old key is gone, nothing happens.
        expect(await mover().moveTokenVerifier(item, { version: 2, verifier: hex() })).toBe(false);
        expect((await b.store.listTokens(id)).map((t) => t.verifier)).toContain(to.verifier);
        expect(await b.store.listTokens(id)).toHaveLength(2);
        // Not an audited change: the token's authority did not change.
        expect((await b.store.listAudit(id)).map((e) => e.type)).toEqual(['tenant.created', 'token.created']);
      });

      test(`${side}: a record changed after it was read (limits) does not move, and keeps its change`, async () => {
        const { id, item } = await tenantWithInvoke();
        await b.store.updateTokenLimits(id, 'inv0', { rpm: 1 }, event('token.limits'));
        const to = { version: 2, verifier: hex() };
        expect(await mover().moveTokenVerifier(item, to)).toBe(false);
        expect(await b.store.getToken(to.verifier)).toBeUndefined();
        expect((await b.store.getToken(String(item.verifier)))?.limits).toEqual({ rpm: 1 });
      });

      test(`${side}: an attribute added after the record was read (limits on a token that had none) cancels the move instead of being dropped`, async () => {
        const { id, item } = await tenantWithInvoke();
        await b.store.updateTokenLimits(id, 'inv0', {}, event('token.limits')); // no limits at all
        const bare = (await b.store.getToken(String(item.verifier))) as unknown as Record<string, unknown>;
        expect(bare.limits).toBeUndefined();
        await b.store.updateTokenLimits(id, 'inv0', { rpm: 3 }, event('token.limits'));
        const to = { version: 2, verifier: hex() };
        expect(await mover().moveTokenVerifier(bare, to)).toBe(false);
        expect(await b.store.getToken(to.verifier)).toBeUndefined();
        expect((await b.store.getToken(String(item.verifier)))?.limits).toEqual({ rpm: 3 });
      });

      test(`${side}: a token revoked after it was read never comes back under its new verifier`, async () => {
        const { id, item } = await tenantWithInvoke();
        expect(await b.store.deleteToken(id, 'inv0', event('token.deleted'))).toBe(true);
        const to = { version: 2, verifier: hex() };
        expect(await mover().moveTokenVerifier(item, to)).toBe(false);
        expect(await b.store.getToken(to.verifier)).toBeUndefined();
        expect((await b.store.listTokens(id)).map((t) => t.tokenId)).toEqual(['admin0']);
      });

      test(`${side}: two moves of one record at once (two requests): one record remains`, async () => {
        const { id, item } = await tenantWithInvoke();
        const a = { version: 2, verifier: hex() };
        const c = { version: 2, verifier: hex() };
        const results = await Promise.all([mover().moveTokenVerifier(item, a), mover().moveTokenVerifier(item, c)]);
        expect(results.filter(Boolean)).toHaveLength(1);
        const tokens = await b.store.listTokens(id);
        expect(tokens.filter((t) => t.tokenId === 'inv0')).toHaveLength(1);
      });
    }

    test('the token inventory names tenant, id, role, label and version, never a verifier or a wrap', async () => {
      const { id, item } = await tenantWithInvoke();
      await b.store.moveTokenVerifier(item, { version: 5, verifier: hex() });
      const rows = (await b.store.listTokenInventory()).filter((r) => r.tenantId === id);
      expect(rows.sort((x, y) => x.tokenId.localeCompare(y.tokenId))).toEqual([
        { tenantId: id, tokenId: 'admin0', role: 'tenant-admin' },
        { tenantId: id, tokenId: 'inv0', role: 'invoke', label: 'app', pepperVersion: 5 },
      ]);
      for (const r of rows) expect(Object.keys(r).sort()).not.toEqual(expect.arrayContaining(['verifier']));
      expect(JSON.stringify(rows)).not.toMatch(/wrappedFactor|verifier/);
    });

    test("the cell's audit chain: created on first use, events chained and anchored like a tenant's", async () => {
      const before = (await b.store.listAudit(CELL_AUDIT_ID)).length;
      await b.store.appendCellEvent(b.region, { type: 'pepper.rotated', actor: 'contract-test', details: { fromVersion: 1, toVersion: 2 } });
      await b.store.appendCellEvent(b.region, { type: 'pepper.rotated', actor: 'contract-test', details: { fromVersion: 2, toVersion: 3 } });
      const events = await b.store.listAudit(CELL_AUDIT_ID);
      expect(events).toHaveLength(before + 2);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(events[events.length - 1]).toMatchObject({ tenantId: CELL_AUDIT_ID, type: 'pepper.rotated', details: { toVersion: 3 }, prevMac: events[events.length - 2].mac });
      expect((await b.audit.anchors.list(CELL_AUDIT_ID)).map((a) => a.seq)).toEqual(events.map((e) => e.seq));
      expect(await b.store.getTenant(CELL_AUDIT_ID)).toMatchObject({ auditSeq: events.length, auditHead: events[events.length - 1].mac });
    });
  });
}
