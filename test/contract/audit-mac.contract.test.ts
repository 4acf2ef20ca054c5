/**
 * One contract for every AuditMac adapter: KMS GenerateMac/VerifyMac (against moto, an HMAC_256
 * key) and the embedded HMAC (in memory and in a key file). Both must agree on what verifies.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand } from '@aws-sdk/client-kms';
import { KmsAuditMac } from '../../lambda/adapters/kms-audit-mac';
import { LocalAuditMac } from '../../lambda/adapters/local-audit-mac';
import type { AuditMac } from '../../lambda/core/ports';
import { awsClients } from '../support/aws-clients';
import { MotoServer, startMoto } from '../support/moto';

let moto: MotoServer;
let dir: string;
beforeAll(async () => {
  moto = await startMoto();
  dir = mkdtempSync(join(tmpdir(), 'sr-audit-mac-'));
});
afterAll(async () => {
  await moto?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function kmsMac(): Promise<AuditMac> {
  const { kms } = awsClients(moto.endpoint, 'eu-central-1');
  const key = await kms.send(new CreateKeyCommand({ KeySpec: 'HMAC_256', KeyUsage: 'GENERATE_VERIFY_MAC', MultiRegion: false }));
  return new KmsAuditMac(kms, key.KeyMetadata!.Arn!);
}
let files = 0;
const fileMac = async (): Promise<AuditMac> => LocalAuditMac.fromFile(join(dir, `key-${++files}`));

/** [name, a fresh adapter with its own key] */
const adapters: [string, () => Promise<AuditMac>][] = [
  ['KMS (moto)', kmsMac],
  ['embedded, in memory', async () => LocalAuditMac.inMemory()],
  ['embedded, key file', fileMac],
];

describe.each(adapters)('AuditMac contract: %s', (_name, make) => {
  const message = Buffer.from('sovereign-router audit message');

  it('generates a 32-byte MAC that is the same for the same message and verifies', async () => {
    const mac = await make();
    const a = await mac.generate(message);
    expect(a).toHaveLength(32);
    expect((await mac.generate(message)).equals(a)).toBe(true);
    expect(await mac.verify(message, a)).toBe(true);
  });

  it('rejects a flipped bit, another message, a short MAC and a MAC under another key', async () => {
    const mac = await make();
    const good = await mac.generate(message);
    const flipped = Buffer.from(good);
    flipped[31] ^= 1;
    expect(await mac.verify(message, flipped)).toBe(false);
    expect(await mac.verify(Buffer.from('another message'), good)).toBe(false);
    expect(await mac.verify(message, good.subarray(0, 16))).toBe(false);
    const other = await make();
    expect(await other.verify(message, good)).toBe(false);
    expect(await mac.verify(message, await other.generate(message))).toBe(false);
  });

  it('refuses to MAC an empty or an over-long message (KMS takes at most 4096 bytes)', async () => {
    const mac = await make();
    await expect(mac.generate(Buffer.alloc(0))).rejects.toThrow(/1-4096 bytes/);
    await expect(mac.generate(Buffer.alloc(4097, 1))).rejects.toThrow(/1-4096 bytes/);
    expect((await mac.generate(Buffer.alloc(4096, 1))).length).toBe(32);
  });
});

describe('embedded AuditMac key file', () => {
  it('keeps the same key across restarts, in a 0600 file', async () => {
    const file = join(dir, 'restart.key');
    const mac = await LocalAuditMac.fromFile(file).generate(Buffer.from('x'));
    expect(await LocalAuditMac.fromFile(file).verify(Buffer.from('x'), mac)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });
});
