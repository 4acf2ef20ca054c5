/** PepperSource contract: a stable pepper of at least 32 bytes, handed out as a copy. */
import { MIN_PEPPER_BYTES } from '../../lambda/adapters/secrets-manager-pepper';
import { BackendFactory, ContractBackend } from './backend';

export function pepperContract(name: string, factory: BackendFactory): void {
  describe(`PepperSource contract: ${name}`, () => {
    let b: ContractBackend;
    beforeAll(() => {
      b = factory();
    });

    test('the same pepper every time, long enough, and a caller wiping its copy does not wipe the source', async () => {
      const first = await b.pepper.getPepper();
      expect(first.length).toBeGreaterThanOrEqual(MIN_PEPPER_BYTES);
      const keep = Buffer.from(first);
      first.fill(0);
      const second = await b.pepper.getPepper();
      expect(second.equals(keep)).toBe(true);
    });
  });
}
