/**
 * KMS failures become KeyServiceErrors with a reason from a fixed table. A hostile or broken
 * endpoint names the error code: a code that is an Object.prototype member must not pick up a
 * function or object as the reason.
 */
import { callKms, KeyServiceError } from '../../../lambda/adapters/kms-data-key-service';

const failWith = (name: string) => () => Promise.reject(Object.assign(new Error('x'), { name }));

test.each(['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'])('an error code %s is "unavailable", a string reason', async (code) => {
  const err = await callKms('Decrypt', failWith(code)).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(KeyServiceError);
  expect((err as KeyServiceError).reason).toBe('unavailable');
});

test('known codes keep their reasons', async () => {
  const reasonOf = async (code: string) => ((await callKms('Decrypt', failWith(code)).catch((e: unknown) => e)) as KeyServiceError).reason;
  expect(await reasonOf('InvalidCiphertextException')).toBe('invalid_ciphertext');
  expect(await reasonOf('ThrottlingException')).toBe('unavailable');
});
