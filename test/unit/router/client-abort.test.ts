import { getEventListeners } from 'node:events';
import { abortedUsage, requestSignal, StreamTally } from '../../../lambda/core/router/client-abort';

describe('StreamTally: characters of generated text in any stream format', () => {
  const tally = (events: unknown[]) => {
    const t = new StreamTally();
    for (const e of events) t.observe({ data: typeof e === 'string' ? e : JSON.stringify(e) });
    return t.outputTokenEstimate;
  };
  test('OpenAI chat chunks: content and tool-call arguments, not roles or ids', () => {
    expect(tally([{ choices: [{ delta: { role: 'assistant', content: 'abcd' } }] }, { choices: [{ delta: { tool_calls: [{ index: 0, id: 'call_123456789', function: { name: 'f', arguments: 'efgh' } }] } }] }])).toBe(2);
  });
  test('Anthropic deltas: text and partial JSON (escapes count as written); message_start and pings count nothing', () => {
    // '12345678' is 8 characters; '{"a"' is written as {\"a\" (6): 14 characters, 4 tokens.
    expect(tally([{ type: 'message_start', message: { usage: { input_tokens: 99 } } }, { type: 'ping' }, { type: 'content_block_delta', delta: { type: 'text_delta', text: '12345678' } }, { type: 'content_block_delta', delta: { type: 'input_json_delta', partial_json: '{"a"' } }])).toBe(4);
  });
  test('a Responses text event that is not a delta (output_text.done) counts nothing', () => {
    expect(tally([{ type: 'response.output_text.done', text: 'the whole text again' }])).toBe(0);
  });
  test('Converse tool input deltas count', () => {
    expect(tally([{ contentBlockIndex: 1, delta: { toolUse: { input: 'abcdefgh' } } }])).toBe(2);
  });
  test('Responses events: string deltas; Converse-style contentBlockDelta', () => {
    expect(tally([{ type: 'response.output_text.delta', delta: 'abcdefgh', item_id: 'msg_x' }, { contentBlockDelta: { delta: { text: 'abcd' } } }])).toBe(3);
  });
  test('[DONE], bad JSON and events without a delta are ignored', () => {
    expect(tally(['[DONE]', '{"delta": oops', { type: 'response.completed', response: {} }])).toBe(0);
  });
});

describe('abortedUsage', () => {
  test('nothing reported: input estimate, output streamed so far, estimated', () => {
    expect(abortedUsage(undefined, 120, 7)).toEqual({ usage: { inputTokens: 120, outputTokens: 7 }, estimated: true });
  });
  test('input reported (Anthropic message_start), output larger than the provisional count', () => {
    expect(abortedUsage({ inputTokens: 50, outputTokens: 1 }, 120, 7)).toEqual({ usage: { inputTokens: 50, outputTokens: 7 }, estimated: true });
  });
  test('all reported and not exceeded by the stream: not an estimate', () => {
    expect(abortedUsage({ inputTokens: 50, outputTokens: 9, cacheReadInputTokens: 10 }, 120, 7)).toEqual({ usage: { inputTokens: 50, outputTokens: 9, cacheReadInputTokens: 10 }, estimated: false });
  });
});

test('requestSignal fires with the client signal, and at the deadline without one', async () => {
  const client = new AbortController();
  const s = requestSignal(Date.now() + 60_000, Date.now, client.signal).signal;
  expect(s.aborted).toBe(false);
  client.abort();
  expect(s.aborted).toBe(true);
  const d = requestSignal(Date.now() + 20, Date.now, undefined).signal;
  await new Promise((r) => setTimeout(r, 60));
  expect(d.aborted).toBe(true);
  expect((d.reason as Error).name).toBe('TimeoutError');
  expect(requestSignal(Date.now() + 60_000, Date.now, AbortSignal.abort()).signal.aborted).toBe(true);
});

test('requestSignal: after dispose neither the deadline nor the client fires it', async () => {
  const client = new AbortController();
  const r = requestSignal(Date.now() + 20, Date.now, client.signal);
  r.dispose();
  await new Promise((done) => setTimeout(done, 60));
  client.abort();
  expect(r.signal.aborted).toBe(false);
});

test('requestSignal: its listeners run once each, in order; a removed one never; one added after it fired never', () => {
  const client = new AbortController();
  const r = requestSignal(Date.now() + 60_000, Date.now, client.signal);
  const ran: string[] = [];
  const a = () => ran.push('a');
  const b = () => ran.push('b');
  const c = () => ran.push('c');
  r.signal.addEventListener('abort', a, { once: true });
  r.signal.addEventListener('abort', b, { once: true });
  r.signal.addEventListener('abort', b, { once: true }); // the same listener twice counts once, as with AbortSignal
  r.signal.addEventListener('abort', c, { once: true });
  r.signal.removeEventListener('abort', b);
  const reason = new Error('client disconnected');
  client.abort(reason);
  client.abort(new Error('again'));
  expect(ran).toEqual(['a', 'c']);
  expect(r.signal.reason).toBe(reason);
  const late = jest.fn();
  r.signal.addEventListener('abort', late);
  expect(late).not.toHaveBeenCalled();
  r.dispose();
});

test('requestSignal: the first of deadline and client wins; the other changes nothing', async () => {
  const client = new AbortController();
  const r = requestSignal(Date.now() + 20, Date.now, client.signal);
  const fired = jest.fn();
  r.signal.addEventListener('abort', fired, { once: true });
  await new Promise((done) => setTimeout(done, 60));
  client.abort(new Error('client disconnected'));
  expect(fired).toHaveBeenCalledTimes(1);
  expect((r.signal.reason as Error).name).toBe('TimeoutError');
  r.dispose();
});

describe('requestSignal shares one client listener and one deadline timer', () => {
  test('many requests on one client signal add one listener to it; all still in flight fire, in order; disposed ones never; a later one starts aborted', () => {
    const client = new AbortController();
    const rs = Array.from({ length: 50 }, () => requestSignal(Date.now() + 60_000, Date.now, client.signal));
    expect(getEventListeners(client.signal, 'abort')).toHaveLength(1);
    const order: number[] = [];
    rs.forEach((r, i) => r.signal.addEventListener('abort', () => order.push(i)));
    for (const i of [3, 7, 49]) rs[i].dispose();
    const reason = new Error('client gone');
    client.abort(reason);
    expect(order).toEqual(Array.from({ length: 50 }, (_, i) => i).filter((i) => ![3, 7, 49].includes(i)));
    for (const [i, r] of rs.entries()) expect(r.signal.aborted).toBe(![3, 7, 49].includes(i));
    expect(rs[0].signal.reason).toBe(reason);
    const late = requestSignal(Date.now() + 60_000, Date.now, client.signal);
    expect(late.signal.aborted).toBe(true);
    expect(late.signal.reason).toBe(reason);
    for (const r of [...rs, late]) r.dispose();
  });

  test('a request whose listener throws keeps no other request of the signal from being cut; the first error surfaces after all ran', () => {
    // A stand-in signal whose abort listener is called here directly, so the error can be seen.
    let fire: (() => void) | undefined;
    const client = { aborted: false, reason: new Error('gone'), addEventListener: (_t: string, fn: () => void) => (fire = fn) } as unknown as AbortSignal;
    const a = requestSignal(Date.now() + 60_000, Date.now, client);
    const b = requestSignal(Date.now() + 60_000, Date.now, client);
    const c = requestSignal(Date.now() + 60_000, Date.now, client);
    a.signal.addEventListener('abort', () => {
      throw new Error('boom');
    });
    b.signal.addEventListener('abort', () => {
      throw new Error('second');
    });
    expect(() => fire!()).toThrow('boom');
    expect([a, b, c].map((r) => r.signal.aborted)).toEqual([true, true, true]);
    for (const r of [a, b, c]) r.dispose();
  });

  test('requests with one deadline period arm one timer between them, not one each (nor a clear each)', () => {
    const set = jest.spyOn(global, 'setTimeout');
    const clear = jest.spyOn(global, 'clearTimeout');
    try {
      requestSignal(Date.now() + 120_000, Date.now, undefined).dispose();
      set.mockClear();
      clear.mockClear();
      for (let i = 0; i < 100; i++) requestSignal(Date.now() + 120_000, Date.now, undefined).dispose();
      expect(set.mock.calls.length).toBeLessThanOrEqual(1);
      expect(clear.mock.calls.length).toBeLessThanOrEqual(1);
    } finally {
      set.mockRestore();
      clear.mockRestore();
    }
  });

  test('deadlines added in any order fire in time order, none before its time; a disposed one never; an earlier one re-arms the timer', async () => {
    const t0 = Date.now();
    const fired: [string, number][] = [];
    const mk = (name: string, ms: number) => {
      const r = requestSignal(t0 + ms, Date.now, undefined);
      r.signal.addEventListener('abort', () => fired.push([name, Date.now() - t0]));
      return r;
    };
    const late = mk('late', 300);
    const gone = mk('gone', 50);
    const early = mk('early', 40);
    const mid = mk('mid', 120);
    gone.dispose();
    await new Promise((done) => setTimeout(done, 450));
    expect(fired.map(([n]) => n)).toEqual(['early', 'mid', 'late']);
    const at = Object.fromEntries(fired);
    expect(at.early).toBeGreaterThanOrEqual(39);
    expect(at.mid).toBeGreaterThanOrEqual(119);
    expect(at.late).toBeGreaterThanOrEqual(299);
    expect(gone.signal.aborted).toBe(false);
    expect((early.signal.reason as Error).name).toBe('TimeoutError');
    for (const r of [late, early, mid]) r.dispose();
  });
});
