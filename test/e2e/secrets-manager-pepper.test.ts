import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { PepperError, SecretsManagerPepperSource } from '../../lambda/adapters/secrets-manager-pepper';
import type { Clock } from '../../lambda/core/ports';
import { awsClients, recordCommands } from '../support/aws-clients';
import { freePort } from '../support/free-port';
import { startMoto, type MotoServer } from '../support/moto';

const REGION = 'eu-west-1';
const PEPPER = 'p'.repeat(24) + 'Zq8#x!Lm4$Wv9@Tc2%Rb7^Yn1&Hs6*Kd'; // 56 ASCII bytes

let moto: MotoServer;
let secretCount = 0;

/** A fresh client whose GetSecretValue calls are counted. */
function countedClient(): { client: SecretsManagerClient; sent: string[] } {
  const client = awsClients(moto.endpoint, REGION).secrets;
  return { client, sent: recordCommands(client) };
}

async function createSecret(value: { SecretString?: string; SecretBinary?: Uint8Array }): Promise<string> {
  const { secrets } = awsClients(moto.endpoint, REGION);
  const out = await secrets.send(new CreateSecretCommand({ Name: `router/pepper-${++secretCount}`, ...value }));
  return out.ARN!;
}

async function failure(promise: Promise<unknown>): Promise<PepperError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PepperError);
  return err as PepperError;
}

beforeAll(async () => {
  moto = await startMoto();
});
afterAll(() => moto?.stop());

describe('SecretsManagerPepperSource against moto', () => {
  it('returns the UTF-8 bytes of SecretString and reads the secret once for many calls', async () => {
    const secretId = await createSecret({ SecretString: PEPPER });
    const { client, sent } = countedClient();
    const source = new SecretsManagerPepperSource(client, secretId);
    for (let i = 0; i < 10; i++) expect((await source.getPepper()).toString('utf8')).toBe(PEPPER);
    expect(sent).toEqual(['GetSecretValueCommand']);
  });

  it('shares one in-flight request between concurrent first calls', async () => {
    const secretId = await createSecret({ SecretString: PEPPER });
    const { client, sent } = countedClient();
    const source = new SecretsManagerPepperSource(client, secretId);
    const peppers = await Promise.all(Array.from({ length: 20 }, () => source.getPepper()));
    expect(peppers.every((p) => p.toString('utf8') === PEPPER)).toBe(true);
    expect(sent).toHaveLength(1);
  });

  it('hands out copies, so a caller zero-filling its pepper does not wipe the cache', async () => {
    const source = new SecretsManagerPepperSource(countedClient().client, await createSecret({ SecretString: PEPPER }));
    (await source.getPepper()).fill(0);
    expect((await source.getPepper()).toString('utf8')).toBe(PEPPER);
  });

  it('reads again once the TTL has passed', async () => {
    let now = Date.parse('2026-11-01T00:00:00Z');
    const clock: Clock = { now: () => new Date(now) };
    const { client, sent } = countedClient();
    const source = new SecretsManagerPepperSource(client, await createSecret({ SecretString: PEPPER }), { ttlMs: 60_000, clock });
    await source.getPepper();
    now += 59_999;
    await source.getPepper();
    expect(sent).toHaveLength(1);
    now += 1;
    await source.getPepper();
    expect(sent).toHaveLength(2);
  });

  it('does not cache a failure: a missing secret fails clearly, then succeeds once it exists', async () => {
    const name = `router/pepper-late-${++secretCount}`;
    const { client, sent } = countedClient();
    const source = new SecretsManagerPepperSource(client, name);

    const err = await failure(source.getPepper());
    expect(err.reason).toBe('not_found');
    expect(err.message).toBe(`pepper secret not found: ${name}`);

    await awsClients(moto.endpoint, REGION).secrets.send(new CreateSecretCommand({ Name: name, SecretString: PEPPER }));
    expect((await source.getPepper()).toString('utf8')).toBe(PEPPER);
    expect(sent).toHaveLength(2);
  });

  it('rejects a pepper shorter than 32 bytes, without echoing it, and does not cache the rejection', async () => {
    const secretId = await createSecret({ SecretString: 'short-pepper-value' });
    const { client, sent } = countedClient();
    const source = new SecretsManagerPepperSource(client, secretId);
    for (let i = 0; i < 2; i++) {
      const err = await failure(source.getPepper());
      expect(err.reason).toBe('invalid');
      expect(err.message).toMatch(/shorter than 32 bytes/);
      expect(err.message).not.toContain('short-pepper-value');
    }
    expect(sent).toHaveLength(2);
  });

  it('rejects a secret with no SecretString', async () => {
    const secretId = await createSecret({ SecretBinary: Buffer.alloc(64, 7) });
    const err = await failure(new SecretsManagerPepperSource(countedClient().client, secretId).getPepper());
    expect(err).toMatchObject({ reason: 'invalid', message: `pepper secret ${secretId} has no SecretString` });
  });

  it('counts bytes, not characters: 16 two-byte characters are a valid 32-byte pepper', async () => {
    const secretId = await createSecret({ SecretString: 'é'.repeat(16) });
    const pepper = await new SecretsManagerPepperSource(countedClient().client, secretId).getPepper();
    expect(pepper).toHaveLength(32);
  });

  it('reports an unreachable Secrets Manager as unavailable', async () => {
    const dead = awsClients(`http://127.0.0.1:${await freePort()}`, REGION).secrets;
    const err = await failure(new SecretsManagerPepperSource(dead, 'router/pepper').getPepper());
    expect(err.reason).toBe('unavailable');
    expect(err.message).toMatch(/^cannot read pepper secret router\/pepper \(/);
  });

  it('rejects a negative TTL', () => {
    expect(() => new SecretsManagerPepperSource(countedClient().client, 'x', { ttlMs: -1 })).toThrow(/ttlMs/);
  });

  describe('versions (AWSCURRENT / AWSPREVIOUS)', () => {
    const put = async (secretId: string, text: string) =>
      awsClients(moto.endpoint, REGION).secrets.send(new PutSecretValueCommand({ SecretId: secretId, SecretString: text }));

    it('a rotation stages the new version AWSCURRENT and the old AWSPREVIOUS; then two reads per TTL, one before', async () => {
      let now = Date.parse('2026-11-01T00:00:00Z');
      const clock: Clock = { now: () => new Date(now) };
      const secretId = await createSecret({ SecretString: PEPPER });
      const { client, sent } = countedClient();
      const source = new SecretsManagerPepperSource(client, secretId, { ttlMs: 60_000, clock });
      expect(await source.getPeppers()).toMatchObject({ current: { version: 1 }, issuing: 1 });
      expect(sent).toEqual(['GetSecretValueCommand']);

      const rotated = await source.rotate(1);
      expect(rotated).toEqual({ version: 2, rotatedAt: '2026-11-01T00:00:00.000Z' });
      sent.length = 0;
      const ring = await source.getPeppers();
      expect(ring.current.version).toBe(2);
      expect(ring.previous?.pepper.toString('utf8')).toBe(PEPPER);
      expect(ring.current.pepper.toString('utf8')).not.toBe(PEPPER);
      expect(sent).toEqual(['GetSecretValueCommand', 'GetSecretValueCommand']);
      // Not yet issued: the default settling time is the TTL.
      expect(ring.issuing).toBe(1);
      now += 60_000;
      expect((await source.getPeppers()).issuing).toBe(2);
      // Another process reads the same two versions.
      const other = await new SecretsManagerPepperSource(countedClient().client, secretId).getPeppers();
      expect([other.current.version, other.previous?.version]).toEqual([2, 1]);
      expect(other.current.pepper.equals(ring.current.pepper)).toBe(true);
    });

    it('ignores an AWSPREVIOUS that is not exactly current - 1 (only one overlap is accepted)', async () => {
      const secretId = await createSecret({ SecretString: PEPPER });
      await put(secretId, JSON.stringify({ format: 'sovereign-router/pepper/v1', version: 2, pepper: 'x'.repeat(64) }));
      await put(secretId, JSON.stringify({ format: 'sovereign-router/pepper/v1', version: 4, pepper: 'y'.repeat(64) }));
      const ring = await new SecretsManagerPepperSource(countedClient().client, secretId).getPeppers();
      expect(ring.current.version).toBe(4);
      expect(ring.previous).toBeUndefined();
    });

    it('refuses a rotated value that is malformed, without echoing it', async () => {
      const secretId = await createSecret({ SecretString: PEPPER });
      await put(secretId, JSON.stringify({ format: 'sovereign-router/pepper/v1', version: 2, pepper: 'leaky-short' }));
      const err = await failure(new SecretsManagerPepperSource(countedClient().client, secretId).getPeppers());
      expect(err.reason).toBe('invalid');
      expect(err.message).not.toContain('leaky-short');
    });

    it('rejects a negative settling time', () => {
      expect(() => new SecretsManagerPepperSource(countedClient().client, 'x', { settleMs: -1 })).toThrow(/settleMs/);
    });
  });
});
