/**
 * readCapped: a buffered upstream body as text under the router's cap, through the adapter's
 * readText when the body has one, else by iterating it (web streams, test fakes).
 */
import { ApiError } from '../../../lambda/core/http';
import { readCapped, type ProviderBody } from '../../../lambda/core/router/provider-port';

function webBody(parts: (string | Uint8Array)[]): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(c) {
      for (const p of parts) c.enqueue(typeof p === 'string' ? new TextEncoder().encode(p) : p);
      c.close();
    },
  });
}

async function refusal(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

describe('readCapped', () => {
  it('no body reads as the empty string', async () => {
    expect(await readCapped({ body: null }, 10)).toBe('');
  });

  it('iterates a body without readText, a character split across chunks, the cap on UTF-16 units', async () => {
    const euro = new TextEncoder().encode('\u20ac');
    expect(await readCapped({ body: webBody(['{"a":"', euro.subarray(0, 1), euro.subarray(1), '"}']) }, 100)).toBe('{"a":"\u20ac"}');
    expect(await readCapped({ body: webBody(['\u20ac'.repeat(4)]) }, 4)).toBe('\u20ac'.repeat(4));
    const err = await refusal(readCapped({ body: webBody(['\u20ac'.repeat(4), 'x']) }, 4));
    expect(err).toMatchObject({ status: 502, code: 'upstream_response_too_large' });
  });

  it('uses the body\u2019s readText with the same cap; undefined from it is the same refusal', async () => {
    const seen: number[] = [];
    const body = (answer: string | undefined): ProviderBody => ({
      readText: async (max) => {
        seen.push(max);
        return answer;
      },
      cancel: async () => undefined,
      [Symbol.asyncIterator]: () => {
        throw new Error('not iterated when readText exists');
      },
    });
    expect(await readCapped({ body: body('{"ok":1}') }, 1234)).toBe('{"ok":1}');
    const err = await refusal(readCapped({ body: body(undefined) }, 5));
    expect(err).toMatchObject({ status: 502, code: 'upstream_response_too_large' });
    expect(seen).toEqual([1234, 5]);
  });

  it('a failure of readText propagates as it is (the adapter\u2019s typed transport error)', async () => {
    const failure = Object.assign(new Error('provider x: connection lost'), { name: 'ProviderCallError', reason: 'connection' });
    const body: ProviderBody = {
      readText: () => Promise.reject(failure),
      cancel: async () => undefined,
      [Symbol.asyncIterator]: () => {
        throw new Error('unused');
      },
    };
    await expect(readCapped({ body }, 10)).rejects.toBe(failure);
  });
});
