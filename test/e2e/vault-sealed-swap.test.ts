/**
 * Acceptance 2: sealed rows taken from DynamoDB and swapped between tenants, providers, secret
 * names, versions and regions fail to open with openSecret and the production KMS adapter (moto).
 * Two cells share one moto: eu-central-1 and us-east-1, each with its own root key and tables.
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { KeyServiceError, KmsDataKeyService } from '../../lambda/adapters/kms-data-key-service';
import { encryptionContextOf, SecretIdentity } from '../../lambda/core/canonical';
import { openSecret, SealedSecret, SealedSecretError } from '../../lambda/core/envelope';
import type { DataKeyService } from '../../lambda/core/ports';
import { awsClients, recordCommands } from '../support/aws-clients';
import { cellFixture, CellFixture } from '../support/cell-fixture';
import { MotoServer, startMoto } from '../support/moto';
import { AdminClient, cellApps, dumpCell, identity, openToString, rejectionOf, secretRows, tenantId, VaultClient } from '../support/vault-client';

const EU = 'eu-central-1';
const US = 'us-east-1';

type Row = Record<string, unknown>;

let moto: MotoServer;
let eu: CellFixture;
let us: CellFixture;
/** KMS adapters on their own clients, so the commands they send can be counted. */
let euKeys: KmsDataKeyService;
let euKmsCalls: string[];
let usKeys: KmsDataKeyService;

const ids = { alpha: '', bravo: '', gamma: '' };
/**
 * Each tenant's erasure key. The attacker here holds every table, the erasure-key table included,
 * so these tests exercise the other bindings (KMS context, HKDF info, AAD); crypto-shredding has
 * its own test (offboarding-shred.test.ts).
 */
const erasure: Record<string, Buffer> = {};
const ek = (id: SecretIdentity): Buffer | undefined => erasure[id.tenant];
const keys: Record<string, string> = {};
/** Rows as stored in DynamoDB (with pk/sk), by `<tenant>/<provider>/<secret>@<version>`. */
const rows: Record<string, Row> = {};

function rowKey(r: Row): string {
  return `${String(r.tenant)}/${String(r.provider)}/${String(r.secret)}@${String(r.version)}`;
}

async function snapshot(f: CellFixture, tenant: string): Promise<void> {
  for (const r of secretRows(await dumpCell(f), tenant)) rows[rowKey(r)] = r;
}

function idOf(r: Row): SecretIdentity {
  return identity(String(r.region), String(r.tenant), String(r.provider), String(r.secret), Number(r.version));
}

beforeAll(async () => {
  moto = await startMoto();
  [eu, us] = await Promise.all([cellFixture(moto.endpoint, EU, { prefix: 'sw-euc1' }), cellFixture(moto.endpoint, US, { prefix: 'sw-use1' })]);
  const euKms = awsClients(moto.endpoint, EU).kms;
  euKmsCalls = recordCommands(euKms);
  euKeys = new KmsDataKeyService(euKms, eu.config.rootKeyArn);
  usKeys = new KmsDataKeyService(awsClients(moto.endpoint, US).kms, us.config.rootKeyArn);

  const euApps = cellApps(eu);
  const usApps = cellApps(us);
  const euAdmin = new AdminClient(euApps.admin);
  const usAdmin = new AdminClient(usApps.admin);
  ids.alpha = tenantId('alpha');
  ids.bravo = tenantId('bravo');
  ids.gamma = tenantId('gamma');
  const alpha = new VaultClient(euApps.vault, (await euAdmin.tenantWithToken(ids.alpha)).token);
  const bravo = new VaultClient(euApps.vault, (await euAdmin.tenantWithToken(ids.bravo)).token);
  const gamma = new VaultClient(usApps.vault, (await usAdmin.tenantWithToken(ids.gamma)).token);

  const store = async (client: VaultClient, tenant: string, provider: string, name = 'default'): Promise<void> => {
    const key = `sk-${tenant}-${provider}-${name}-${Math.random().toString(36).slice(2)}`;
    keys[`${tenant}/${provider}/${name}@1`] = key;
    const res = await client.storeSecret(provider, key, name);
    if (res.status !== 201) throw new Error(`store ${provider}: ${res.status} ${res.body}`);
  };
  await store(alpha, ids.alpha, 'openai');
  await store(alpha, ids.alpha, 'anthropic');
  await store(alpha, ids.alpha, 'openai', 'backup');
  await store(bravo, ids.bravo, 'openai');
  await store(gamma, ids.gamma, 'openai');
  await snapshot(eu, ids.alpha);
  await snapshot(eu, ids.bravo);
  await snapshot(us, ids.gamma);
  for (const [f, t] of [[eu, ids.alpha], [eu, ids.bravo], [us, ids.gamma]] as const) erasure[t] = (await f.store.getErasureKey(t))!;

  // Version 2 of alpha's openai key; version 1 survives only in our snapshot.
  const v2 = `sk-${ids.alpha}-openai-default-v2-${Math.random().toString(36).slice(2)}`;
  keys[`${ids.alpha}/openai/default@2`] = v2;
  if ((await alpha.rotateSecret('openai', 'default', v2)).status !== 200) throw new Error('rotate failed');
  await snapshot(eu, ids.alpha);
});
afterAll(() => moto?.stop());

const A = () => rows[`${ids.alpha}/openai/default@1`];
const A2 = () => rows[`${ids.alpha}/openai/default@2`];
const Aanth = () => rows[`${ids.alpha}/anthropic/default@1`];
const Aback = () => rows[`${ids.alpha}/openai/backup@1`];
const B = () => rows[`${ids.bravo}/openai/default@1`];
const G = () => rows[`${ids.gamma}/openai/default@1`];

const CRYPTO = ['iv', 'ciphertext', 'tag'] as const;
const pick = (r: Row, fields: readonly string[]): Row => Object.fromEntries(fields.map((k) => [k, r[k]]));
const labels = (id: SecretIdentity): Row => ({ region: id.region, tenant: id.tenant, provider: id.provider, secret: id.secret, version: id.version });

/** Outcome of an attempt to open: the plaintext must never reach `use`. */
async function attempt(record: Row, expected: SecretIdentity, dataKeys: DataKeyService = euKeys, tenantFactor?: Buffer): Promise<Error> {
  const seen: string[] = [];
  // With a guessed factor the attacker also supplies a well-formed version salt.
  const versionSalt = tenantFactor ? Buffer.alloc(32, 9) : undefined;
  const err = await rejectionOf(
    openSecret({ record: record as unknown as SealedSecret, expected, dataKeys, tenantFactor, versionSalt, erasureKey: ek(expected), use: (b) => seen.push(b.toString('utf8')) }),
  );
  expect(seen).toEqual([]);
  return err;
}

function expectSealed(err: Error, reason: string): void {
  expect(err).toBeInstanceOf(SealedSecretError);
  expect((err as SealedSecretError).reason).toBe(reason);
  expect(err.message).toMatch(/^sealed secret (could not be opened|record is malformed)$/);
}

function expectKms(err: Error, reasons: readonly string[]): void {
  expect(err).toBeInstanceOf(KeyServiceError);
  expect(reasons).toContain((err as KeyServiceError).reason);
}

/**
 * A KMS that ignores the encryption context (as a broken or emulated KMS might): it always decrypts
 * with the context the blob was really sealed under. What then stops a relabelled row is our own
 * binding: HKDF info and the GCM AAD.
 */
function contextBlindKeys(source: Row, cell: KmsDataKeyService = euKeys): DataKeyService {
  return {
    generateDataKey: () => Promise.reject(new Error('not used')),
    decryptDataKey: (wrapped, _context, keyArn) => cell.decryptDataKey(wrapped, encryptionContextOf(idOf(source)), keyArn),
  };
}

describe('controls', () => {
  it('every stored row opens under its own identity in its own cell', async () => {
    for (const [k, r] of Object.entries(rows)) {
      if (k === `${ids.alpha}/openai/default@1`) continue; // superseded, checked below
      const cellKeys = r.region === US ? usKeys : euKeys;
      expect(await openToString(r, idOf(r), cellKeys, undefined, undefined, ek(idOf(r)))).toBe(keys[k]);
    }
    // The superseded version still opens from the snapshot: the swap tests below fail for the swap, not for the row.
    expect(await openToString(A(), idOf(A()), euKeys, undefined, undefined, ek(idOf(A())))).toBe(keys[`${ids.alpha}/openai/default@1`]);
    expect(A2().version).toBe(2);
  });
});

describe.each([
  ['tenants', () => A(), () => B()],
  ['providers', () => A(), () => Aanth()],
  ['secret names', () => A(), () => Aback()],
  ['versions', () => A(), () => A2()],
])('rows swapped between %s', (_what, src, dst) => {
  it('a row presented under the other identity is refused before KMS (labels disagree)', async () => {
    const before = euKmsCalls.length;
    expectSealed(await attempt(src(), idOf(dst())), 'identity_mismatch');
    expectSealed(await attempt(dst(), idOf(src())), 'identity_mismatch');
    expect(euKmsCalls.length).toBe(before);
  });

  it('a row relabelled to the other identity fails at KMS (encryption context)', async () => {
    const relabelled = { ...src(), ...labels(idOf(dst())) };
    expectKms(await attempt(relabelled, idOf(dst())), ['invalid_ciphertext']);
    const back = { ...dst(), ...labels(idOf(src())) };
    expectKms(await attempt(back, idOf(src())), ['invalid_ciphertext']);
  });

  it("a row given the other row's wrapped key fails at KMS", async () => {
    expectKms(await attempt({ ...dst(), wrappedKey: src().wrappedKey }, idOf(dst())), ['invalid_ciphertext']);
    expectKms(await attempt({ ...src(), wrappedKey: dst().wrappedKey }, idOf(src())), ['invalid_ciphertext']);
  });

  it("a row given the other row's iv, ciphertext and tag fails authentication", async () => {
    for (const fields of [CRYPTO, ['ciphertext'], ['ciphertext', 'tag'], ['iv'], ['tag']] as const) {
      const mixed = { ...dst(), ...pick(src(), fields), fingerprint: src().fingerprint };
      expectSealed(await attempt(mixed, idOf(dst())), 'integrity');
    }
  });

  it('a relabelled row fails even against a KMS that ignores the encryption context (HKDF info and AAD)', async () => {
    const relabelled = { ...src(), ...labels(idOf(dst())) };
    expectSealed(await attempt(relabelled, idOf(dst()), contextBlindKeys(src())), 'integrity');
    // Sanity: the context-blind KMS does open the untouched row.
    expect(await openToString(src(), idOf(src()), contextBlindKeys(src()), undefined, undefined, ek(idOf(src())))).toBe(keys[rowKey(src())]);
  });
});

describe('rows swapped in the table and read back through the store', () => {
  it("a row of one tenant written over another tenant's row does not open for either", async () => {
    const table = eu.config.tables.tenants;
    const victim = tenantId('victim');
    const euApps = cellApps(eu);
    const v = new VaultClient(euApps.vault, (await new AdminClient(euApps.admin).tenantWithToken(victim)).token);
    expect((await v.storeSecret('openai', 'sk-victim-original-0123456789')).status).toBe(201);
    erasure[victim] = (await eu.store.getErasureKey(victim))!;

    // Copy alpha's row (crypto fields and key) into the victim's item, labels as the victim's.
    const original = (await eu.store.getSecret(victim, 'openai', 'default'))!;
    await eu.clients.doc.send(
      new PutCommand({ TableName: table, Item: { ...A2(), pk: `TENANT#${victim}`, sk: 'SECRET#openai#default', ...labels(idOf({ ...A2(), tenant: victim })) } }),
    );
    const swapped = (await eu.store.getSecret(victim, 'openai', 'default'))!;
    expect(swapped.ciphertext).toBe(A2().ciphertext);
    expectKms(await attempt(swapped as unknown as Row, identity(EU, victim, 'openai', 'default', 2)), ['invalid_ciphertext']);
    expectSealed(await attempt(swapped as unknown as Row, identity(EU, ids.alpha, 'openai', 'default', 2)), 'identity_mismatch');

    // Only the crypto fields moved: labels and wrapped key are the victim's own.
    await eu.clients.doc.send(
      new PutCommand({ TableName: table, Item: { ...original, ...pick(A2(), CRYPTO), pk: `TENANT#${victim}`, sk: 'SECRET#openai#default' } }),
    );
    const mixed = (await eu.store.getSecret(victim, 'openai', 'default'))!;
    expectSealed(await attempt(mixed as unknown as Row, identity(EU, victim, 'openai')), 'integrity');

    // Restored, it opens again.
    await eu.clients.doc.send(new PutCommand({ TableName: table, Item: { ...original, pk: `TENANT#${victim}`, sk: 'SECRET#openai#default' } }));
    expect(await openToString(await eu.store.getSecret(victim, 'openai', 'default'), identity(EU, victim, 'openai'), euKeys, undefined, undefined, await eu.store.getErasureKey(victim))).toBe(
      'sk-victim-original-0123456789',
    );
  });
});

describe('rows moved between regions (eu-central-1 and us-east-1 cells in one moto)', () => {
  it('the cells have distinct single-Region root keys', () => {
    expect(eu.config.rootKeyArn).toMatch(/^arn:aws:kms:eu-central-1:/);
    expect(us.config.rootKeyArn).toMatch(/^arn:aws:kms:us-east-1:/);
  });

  it('an eu-central-1 record cannot be opened by the us-east-1 cell', async () => {
    const r = A2();
    // As stored: it names the eu key, which the us cell refuses to use (no KMS call needed).
    expectKms(await attempt(r, idOf(r), usKeys), ['denied']);
    // Claimed for the us cell: labels and key ARN rewritten to us-east-1.
    const moved = { ...r, region: US, keyArn: us.config.rootKeyArn };
    expectKms(await attempt(moved, idOf(moved), usKeys), ['invalid_ciphertext', 'denied', 'unavailable']);
    // Relabelled to us-east-1 but opened with the eu key: the region is in the KMS context.
    const relabelled = { ...r, region: US };
    expectKms(await attempt(relabelled, idOf(relabelled), euKeys), ['invalid_ciphertext']);
    // And a context-blind KMS still cannot open it: the region is in the HKDF info and the AAD.
    expectSealed(await attempt(relabelled, idOf(relabelled), contextBlindKeys(r)), 'integrity');
    // A us-east-1 adapter configured with the eu key ARN cannot reach that key either.
    const misconfigured = new KmsDataKeyService(awsClients(moto.endpoint, US).kms, eu.config.rootKeyArn);
    expectKms(await attempt(r, idOf(r), misconfigured), ['invalid_ciphertext', 'denied', 'unavailable']);
  });

  it('a us-east-1 record cannot be opened by the eu-central-1 cell', async () => {
    const r = G();
    expectKms(await attempt(r, idOf(r), euKeys), ['denied']);
    const moved = { ...r, region: EU, keyArn: eu.config.rootKeyArn };
    expectKms(await attempt(moved, idOf(moved), euKeys), ['invalid_ciphertext', 'denied', 'unavailable']);
    const relabelled = { ...r, region: EU };
    expectKms(await attempt(relabelled, idOf(relabelled), usKeys), ['invalid_ciphertext']);
    expectSealed(await attempt(relabelled, idOf(relabelled), contextBlindKeys(r, usKeys)), 'integrity');
    const misconfigured = new KmsDataKeyService(awsClients(moto.endpoint, EU).kms, us.config.rootKeyArn);
    expectKms(await attempt(r, idOf(r), misconfigured), ['invalid_ciphertext', 'denied', 'unavailable']);
  });

  it("crypto fields of a us-east-1 row do not open under an eu-central-1 row's identity and key", async () => {
    const mixed = { ...B(), ...pick(G(), CRYPTO), fingerprint: G().fingerprint };
    expectSealed(await attempt(mixed, idOf(B()), euKeys), 'integrity');
    expectKms(await attempt({ ...B(), wrappedKey: G().wrappedKey }, idOf(B()), euKeys), ['invalid_ciphertext', 'denied', 'unavailable']);
  });
});

describe('edited metadata', () => {
  it('a flipped sovereign flag or a malformed field (fingerprint included) is refused', async () => {
    const r = B();
    // The fingerprint is display metadata, keyed with the pepper and not checked on open
    // (docs/sealed-secret-format.md); its shape is.
    expectSealed(await attempt({ ...r, fingerprint: 'hmac:not-hex-at-all' }, idOf(r)), 'malformed');
    expectSealed(await attempt({ ...r, sovereign: true }, idOf(r)), 'mode_mismatch');
    expectSealed(await attempt({ ...r, sovereign: true }, idOf(r), euKeys, Buffer.alloc(32, 7)), 'integrity');
    expectSealed(await attempt({ ...r, formatVersion: 1 }, idOf(r)), 'malformed');
    expectSealed(await attempt({ ...r, formatVersion: 3 }, idOf(r)), 'malformed');
    expectSealed(await attempt({ ...r, iv: 'AAAA' }, idOf(r)), 'malformed');
    expectSealed(await attempt({ ...r, keyArn: undefined }, idOf(r)), 'malformed');
    expectKms(await attempt({ ...r, keyArn: us.config.rootKeyArn }, idOf(r)), ['denied']);
  });
});
