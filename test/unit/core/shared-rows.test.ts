/**
 * Shared rows (lambda/core/shared-rows.ts): one deeply frozen object per unchanged stored row,
 * whose checked parse the router's parsers keep by identity. What is kept must be exactly what a
 * fresh parse gives, a malformed row must be refused every time, and nothing that was not
 * registered (an ordinary item, frozen or not) may take the shortcut.
 */
import { AUDIT_GENESIS } from '../../../lambda/core/audit-chain';
import { openSecret, parseSealedRow, parseSealedSecret, SealedSecretError, sealSecret, type SealedSecret } from '../../../lambda/core/envelope';
import type { SecretIdentity } from '../../../lambda/core/canonical';
import { isSharedRow, shareRow } from '../../../lambda/core/shared-rows';
import { parseTenantRecord, parseTokenRecord, StoredRecordError } from '../../../lambda/core/tenant-model';
import { RowCache } from '../../../local/embedded/row-cache';
import { FakeDataKeys } from './fake-data-keys';

const NOW = '2026-01-01T00:00:00.000Z';
const tenantText = JSON.stringify({
  tenantId: 'acme',
  region: 'eu-central-1',
  mode: 'managed',
  status: 'active',
  policy: { monthlyBudgetUsd: 10, routes: { fast: [{ provider: 'openai', model: 'gpt-4o-mini' }] } },
  secretVersions: { 'openai#default': { version: 2 } },
  createdAt: NOW,
  updatedAt: NOW,
  auditSeq: 3,
  auditHead: AUDIT_GENESIS,
});
const tokenText = JSON.stringify({ verifier: 'ab'.repeat(32), tokenId: 'tk_1', tenantId: 'acme', role: 'invoke', limits: { rpm: 5, allowedModels: ['gpt-4o-mini'] }, createdAt: NOW });
const shared = (text: string): Record<string, unknown> => shareRow(JSON.parse(text) as Record<string, unknown>);

describe('shareRow', () => {
  it('freezes the item and everything in it, and registers only that object', () => {
    const item = shared(tenantText);
    expect(isSharedRow(item)).toBe(true);
    expect(Object.isFrozen(item)).toBe(true);
    const policy = item.policy as { routes: { fast: object[] } };
    expect(Object.isFrozen(policy)).toBe(true);
    expect(Object.isFrozen(policy.routes.fast)).toBe(true);
    expect(Object.isFrozen(policy.routes.fast[0])).toBe(true);
    expect(() => {
      'use strict';
      (policy as unknown as Record<string, unknown>).monthlyBudgetUsd = 1e9;
    }).toThrow(TypeError);
    // A copy, or an item frozen by someone else, is not a shared row.
    expect(isSharedRow({ ...item })).toBe(false);
    expect(isSharedRow(Object.freeze(JSON.parse(tenantText)))).toBe(false);
    expect(isSharedRow(undefined)).toBe(false);
    expect(isSharedRow('text')).toBe(false);
  });
});

describe('parseTenantRecord and parseTokenRecord keep the checked record of a shared row', () => {
  it('the same shared row: the same frozen record, equal to a fresh parse of the same text', () => {
    const row = shared(tenantText);
    const first = parseTenantRecord(row, 'acme');
    expect(parseTenantRecord(row, 'acme')).toBe(first);
    expect(first).toEqual(parseTenantRecord(JSON.parse(tenantText), 'acme'));
    expect(Object.isFrozen(first)).toBe(true);
    expect(Object.isFrozen(first.secretVersions)).toBe(true);
    expect(Object.isFrozen(first.secretVersions!['openai#default'])).toBe(true);
    const tokenRow = shared(tokenText);
    const token = parseTokenRecord(tokenRow);
    expect(parseTokenRecord(tokenRow)).toBe(token);
    expect(token).toEqual(parseTokenRecord(JSON.parse(tokenText)));
    expect(Object.isFrozen(token)).toBe(true);
  });

  it('a kept tenant record is still refused for another tenant, every time', () => {
    const row = shared(tenantText);
    parseTenantRecord(row, 'acme');
    for (let i = 0; i < 2; i++) expect(() => parseTenantRecord(row, 'globex')).toThrow(StoredRecordError);
    // And a row first asked for under the wrong tenant keeps nothing that the right one would miss.
    const other = shared(tenantText);
    expect(() => parseTenantRecord(other, 'globex')).toThrow(StoredRecordError);
    expect(parseTenantRecord(other, 'acme')).toEqual(parseTenantRecord(JSON.parse(tenantText), 'acme'));
  });

  it('a malformed shared row is refused on every call (nothing is kept for it)', () => {
    const badTenant = shared(JSON.stringify({ ...JSON.parse(tenantText), policy: { monthlyBudgetUsd: -1 } }));
    const badToken = shared(JSON.stringify({ ...JSON.parse(tokenText), role: 'root' }));
    for (let i = 0; i < 3; i++) {
      expect(() => parseTenantRecord(badTenant, 'acme')).toThrow(StoredRecordError);
      expect(() => parseTokenRecord(badToken)).toThrow(StoredRecordError);
    }
  });

  it('an item that is not a shared row is parsed afresh on every call', () => {
    const plain = JSON.parse(tenantText) as Record<string, unknown>;
    const first = parseTenantRecord(plain, 'acme');
    expect(parseTenantRecord(plain, 'acme')).not.toBe(first);
    // Changed between two calls (possible only because it is not frozen): the change is seen.
    plain.status = 'offboarded';
    expect(parseTenantRecord(plain, 'acme').status).toBe('offboarded');
    const frozen = Object.freeze(JSON.parse(tokenText) as object);
    expect(parseTokenRecord(frozen)).not.toBe(parseTokenRecord(frozen));
  });
});

describe('parseSealedRow keeps the parse of a shared row by identity', () => {
  const id: SecretIdentity = { app: 'sovereign-router', region: 'eu-central-1', tenant: 'acme', provider: 'openai', secret: 'default', version: 1 };
  const erasureKey = Buffer.alloc(32, 0x5e);

  it('the same shared row: the same frozen result, equal to parseSealedSecret, which opens; a tampered shared copy does not', async () => {
    const kms = new FakeDataKeys();
    const record = await sealSecret({ identity: id, plaintext: Buffer.from('sk-shared-row-test'), dataKeys: kms, fingerprintKey: Buffer.alloc(32, 1), erasureKey });
    const row = shared(JSON.stringify(record));
    const first = parseSealedRow(row);
    expect(parseSealedRow(row)).toBe(first);
    expect(first).toEqual(parseSealedSecret(record));
    const open = (r: Readonly<SealedSecret>) => openSecret({ record: r as SealedSecret, expected: id, dataKeys: kms, erasureKey, use: (p) => p.toString('utf8') });
    expect(await open(first)).toBe('sk-shared-row-test');
    const tag = Buffer.from(record.tag, 'base64');
    tag[3] ^= 1;
    const tampered = parseSealedRow(shared(JSON.stringify({ ...record, tag: tag.toString('base64') })));
    await expect(open(tampered)).rejects.toMatchObject({ name: 'SealedSecretError', reason: 'integrity' });
  });

  it('the binding kept with a row serves only the identity it was made for: another app, version or tenant is refused', async () => {
    const kms = new FakeDataKeys();
    const record = await sealSecret({ identity: id, plaintext: Buffer.from('sk-binding-test'), dataKeys: kms, fingerprintKey: Buffer.alloc(32, 1), erasureKey });
    const row = parseSealedRow(shared(JSON.stringify(record)));
    const open = (expected: SecretIdentity) => openSecret({ record: row as SealedSecret, expected, dataKeys: kms, erasureKey, use: (p) => p.toString('utf8') });
    expect(await open(id)).toBe('sk-binding-test');
    // Another app: the row's identity fields match, but the kept binding is not used for it (the
    // identity is checked afresh, and only one app is valid).
    await expect(open({ ...id, app: 'someone-else' } as unknown as SecretIdentity)).rejects.toThrow('invalid secret identity: app');
    await expect(open({ ...id, version: 2 })).rejects.toMatchObject({ name: 'SealedSecretError', reason: 'identity_mismatch' });
    await expect(open({ ...id, tenant: 'globex' })).rejects.toMatchObject({ name: 'SealedSecretError', reason: 'identity_mismatch' });
    expect(await open(id)).toBe('sk-binding-test');
    expect(kms.decryptCalls).toBe(2);
  });

  it('a malformed shared row is refused on every call', () => {
    const row = shared(JSON.stringify({ formatVersion: 2, algorithm: 'SR2-HKDF-SHA256-AES256GCM', tenant: 'acme' }));
    for (let i = 0; i < 3; i++) expect(() => parseSealedRow(row)).toThrow(SealedSecretError);
  });
});

describe('RowCache.item', () => {
  it('one shared, deeply frozen parse per cached row until the cache is cleared; no row stays undefined', () => {
    const cache = new RowCache();
    let loads = 0;
    let parses = 0;
    const load = () => {
      loads++;
      return tokenText;
    };
    const parse = (body: string) => {
      parses++;
      return JSON.parse(body) as Record<string, unknown>;
    };
    const first = cache.item('k', load, parse)!;
    expect(isSharedRow(first)).toBe(true);
    expect(Object.isFrozen((first as { limits: { allowedModels: string[] } }).limits.allowedModels)).toBe(true);
    expect(cache.item('k', load, parse)).toBe(first);
    expect(cache.get('k', load)).toBe(tokenText);
    expect([loads, parses]).toEqual([1, 1]);
    cache.clear();
    const next = cache.item('k', load, parse);
    expect(next).not.toBe(first);
    expect(next).toEqual(first);
    expect([loads, parses]).toEqual([2, 2]);
    expect(cache.item('none', () => undefined, parse)).toBeUndefined();
    expect(cache.bodies()).toEqual([tokenText]);
  });
});
