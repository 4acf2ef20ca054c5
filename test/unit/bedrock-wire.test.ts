/**
 * The Bedrock wire pieces of the provider adapter (issue 14.1): Converse URLs pinned to the cell
 * region's host, event-stream framing bounds (checked before anything is buffered), and the
 * re-framing of event-stream messages as SSE, against frames encoded independently.
 */
import { bedrockPath, eventStreamToSse, MAX_EVENT_MESSAGE_BYTES, messages } from '../../lambda/adapters/bedrock-wire';
import { providerUrl } from '../../lambda/adapters/provider-http';
import { SseParser } from '../../lambda/core/sse';
import { frame } from '../support/fake-bedrock';

const REGION = 'eu-central-1';
const target = (baseUrl: string, model = 'anthropic.claude-3-5-haiku-20241022-v1:0') => ({ provider: 'b', kind: 'bedrock' as const, baseUrl, model });

async function* chunks(...parts: Uint8Array[]) {
  for (const p of parts) yield p;
}
async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('Converse URLs', () => {
  test('the model id is one encoded path segment on the region host', () => {
    expect(providerUrl(target('https://bedrock-runtime.eu-central-1.amazonaws.com'), '/converse-stream', REGION)).toBe(
      'https://bedrock-runtime.eu-central-1.amazonaws.com/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream',
    );
    expect(providerUrl(target('https://bedrock-runtime-fips.eu-central-1.amazonaws.com'), '/converse', REGION)).toContain('bedrock-runtime-fips.eu-central-1');
  });

  test.each([
    ['another region', target('https://bedrock-runtime.us-east-1.amazonaws.com'), "outside the cell's region"],
    ['a look-alike host', target('https://bedrock-runtime.eu-central-1.amazonaws.com.evil.example'), 'baseUrl must be'],
    ['plain http to AWS', target('http://bedrock-runtime.eu-central-1.amazonaws.com'), 'baseUrl must be'],
    ['a path on the endpoint', target('https://bedrock-runtime.eu-central-1.amazonaws.com/x'), 'must not carry a path'],
    ['a path-walking model', target('https://bedrock-runtime.eu-central-1.amazonaws.com', '../../admin'), 'not a Bedrock model id'],
    ['an inference profile', target('https://bedrock-runtime.eu-central-1.amazonaws.com', 'eu.anthropic.claude-3-5-haiku-20241022-v1:0'), 'cross-region inference profile'],
  ])('%s is refused', (_n, t, message) => {
    expect(() => providerUrl(t, '/converse', REGION)).toThrow(message);
  });

  test('Converse paths only for Bedrock, and Bedrock only through Converse', () => {
    expect(() => providerUrl(target('https://bedrock-runtime.eu-central-1.amazonaws.com'), '/v1/chat/completions', REGION)).toThrow('not an API of this provider kind');
    expect(() => providerUrl({ provider: 'o', kind: 'openai', baseUrl: 'https://api.openai.com' }, '/converse', REGION)).toThrow('not an API of this provider kind');
    expect(() => bedrockPath(target('https://bedrock-runtime.eu-central-1.amazonaws.com'), '/converse', undefined)).toThrow('no cell region');
  });
});

describe('event-stream framing', () => {
  const a = frame({ ':message-type': 'event', ':event-type': 'messageStart' }, { role: 'assistant' });
  const b = frame({ ':message-type': 'event', ':event-type': 'messageStop' }, { stopReason: 'end_turn' });

  test('messages are reassembled across arbitrary chunk boundaries', async () => {
    const all = Buffer.concat([a, b]);
    for (const cut of [1, 3, 4, 5, 12, a.length - 1, a.length, a.length + 2]) {
      const out = await collect(messages(chunks(all.subarray(0, cut), all.subarray(cut))));
      expect(out.map((m) => Buffer.from(m).toString('hex'))).toEqual([a.toString('hex'), b.toString('hex')]);
    }
  });

  test('a declared length over the cap or under the minimum is refused before buffering; a cut message is an error', async () => {
    const huge = Buffer.alloc(8);
    huge.writeUInt32BE(MAX_EVENT_MESSAGE_BYTES + 1, 0);
    await expect(collect(messages(chunks(huge)))).rejects.toThrow('out of bounds');
    const tiny = Buffer.alloc(8);
    tiny.writeUInt32BE(4, 0);
    await expect(collect(messages(chunks(tiny)))).rejects.toThrow('out of bounds');
    await expect(collect(messages(chunks(a.subarray(0, a.length - 3))))).rejects.toThrow('ended inside a message');
  });

  test('events and exceptions become named SSE events; a CRC mismatch errors the stream', async () => {
    const exc = frame({ ':message-type': 'exception', ':exception-type': 'throttlingException' }, { message: 'line1\nline2' });
    const sse = eventStreamToSse(new Response(new Uint8Array(Buffer.concat([a, exc]))).body!);
    const parser = new SseParser();
    const events = [...parser.push(await new Response(sse).text()), ...parser.end()];
    expect(events).toEqual([
      { event: 'messageStart', data: '{"role":"assistant"}' },
      { event: 'throttlingException', data: '{"message":"line1\\nline2"}' },
    ]);
    const bad = Buffer.from(a);
    bad[bad.length - 6] ^= 0xff;
    await expect(new Response(eventStreamToSse(new Response(new Uint8Array(bad)).body!)).text()).rejects.toThrow();
  });

  test('hostile event-type names cannot inject SSE fields', async () => {
    const evil = frame({ ':message-type': 'event', ':event-type': 'x\ndata: {"injected":true}' }, { a: 1 });
    const text = await new Response(eventStreamToSse(new Response(new Uint8Array(evil)).body!)).text();
    expect(text).toBe('event: unknownException\ndata: {"a":1}\n\n');
  });
});
