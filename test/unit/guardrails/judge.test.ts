import { judgeRequest } from '../../../lambda/core/guardrails/judge';
import { effectiveGuardrails, guardrailsSchema } from '../../../lambda/core/guardrails/policy';
import { estimateTextTokens } from '../../../lambda/core/guardrails/token-estimate';

const g = (tenant: unknown, token?: unknown) => effectiveGuardrails(guardrailsSchema.parse(tenant), token === undefined ? undefined : guardrailsSchema.parse(token))!;
const refuseAll = g({ personalData: { email: 'refuse', phone: 'refuse', card: 'refuse', iban: 'refuse' }, blockedTerms: ['Project Nightingale'] });
const redactAll = g({ personalData: { email: 'redact', phone: 'redact', card: 'redact', iban: 'redact' } });
const chat = (...messages: unknown[]) => ({ model: 'm', messages });

describe('policy', () => {
  test('tenant and token combine strictly: refuse beats redact, terms add up, the smaller cap wins', () => {
    const e = g({ personalData: { email: 'redact' }, blockedTerms: ['Alpha'], maxInputTokens: 1000 }, { personalData: { email: 'refuse', card: 'redact' }, blockedTerms: ['ＢＥＴＡ'], maxInputTokens: 5000 });
    expect(Object.fromEntries(e.personalData)).toEqual({ email: 'refuse', card: 'redact' });
    expect(e.blockedTerms).toEqual(['alpha', 'beta']);
    expect(e.maxInputTokens).toBe(1000);
    expect(effectiveGuardrails(undefined, undefined)).toBeUndefined();
    expect(effectiveGuardrails({}, {})).toBeUndefined();
  });

  test('a blocked term that normalizes to nothing is refused by the schema', () => {
    expect(guardrailsSchema.safeParse({ blockedTerms: ['\u200B\u200C'] }).success).toBe(false);
    expect(guardrailsSchema.safeParse({ personalData: { ssn: 'refuse' } }).success).toBe(false);
  });
});

describe('refusal: rule names, never text', () => {
  test.each([
    ['e-mail', 'mail me: bob@example.com', 'personal_data:email'],
    ['phone', 'ring +44 20 7946 0958', 'personal_data:phone'],
    ['card', 'card 4111-1111-1111-1111', 'personal_data:card'],
    ['IBAN', 'to DE89 3704 0044 0532 0130 00', 'personal_data:iban'],
    ['blocked term', 'about project nightingale', 'blocked_term'],
  ])('%s in an OpenAI message', (_what, text, rule) => {
    const v = judgeRequest('chat', chat({ role: 'user', content: text }), refuseAll);
    expect(v.action).toBe('refused');
    expect(v.rules).toEqual([rule]);
    expect(JSON.stringify(v)).not.toContain(text.split(' ').pop()!);
  });

  test('nothing found: passed, body untouched', () => {
    const body = chat({ role: 'user', content: 'Order 12345678 shipped on 2024-01-15, version 1.2.3. Nightingales sing.' });
    expect(judgeRequest('chat', body, refuseAll)).toMatchObject({ action: 'passed', rules: [] });
  });

  test('blocked terms match whole words after NFKC, case folding and zero-width removal', () => {
    for (const text of ['PROJECT NIGHTINGALE', 'Ｐｒｏｊｅｃｔ　Ｎｉｇｈｔｉｎｇａｌｅ', 'project\u200B night\u200Cingale', 'project\n\tnightingale!']) {
      expect(judgeRequest('chat', chat({ role: 'user', content: text }), refuseAll).rules).toEqual(['blocked_term']);
    }
    expect(judgeRequest('chat', chat({ role: 'user', content: 'project nightingales' }), refuseAll).action).toBe('passed');
  });
});

describe('evasion by splitting (scanning each segment and their concatenation)', () => {
  test('a card number split over two OpenAI content parts is caught', () => {
    const body = chat({ role: 'user', content: [{ type: 'text', text: 'my card is 4111 1111 ' }, { type: 'text', text: '1111 1111 thanks' }] });
    expect(judgeRequest('chat', body, refuseAll).rules).toEqual(['personal_data:card']);
  });

  test('an e-mail address split over two messages is caught', () => {
    const body = chat({ role: 'user', content: 'write to alice.smith@' }, { role: 'user', content: 'example.com please' });
    expect(judgeRequest('chat', body, refuseAll).rules).toEqual(['personal_data:email']);
  });

  test('a blocked term split over two Anthropic text blocks, and one in the system prompt', () => {
    const split = { model: 'm', max_tokens: 10, messages: [{ role: 'user', content: [{ type: 'text', text: 'tell me about Project Night' }, { type: 'text', text: 'ingale' }] }] };
    expect(judgeRequest('messages', split, refuseAll).rules).toEqual(['blocked_term']);
    const system = { model: 'm', max_tokens: 10, system: [{ type: 'text', text: 'PROJECT NIGHTINGALE rules' }], messages: [{ role: 'user', content: 'hi' }] };
    expect(judgeRequest('messages', system, refuseAll).rules).toEqual(['blocked_term']);
  });

  test('a seam counts as a word boundary: a term right after another segment is still found', () => {
    const body = chat({ role: 'user', content: 'hello' }, { role: 'user', content: 'project nightingale' });
    expect(judgeRequest('chat', body, refuseAll).rules).toEqual(['blocked_term']);
  });

  test('a card in one part stays found when the next part starts with digits', () => {
    const body = chat({ role: 'user', content: [{ type: 'text', text: '4111111111111111' }, { type: 'text', text: '5 items' }] });
    expect(judgeRequest('chat', body, refuseAll).rules).toEqual(['personal_data:card']);
  });

  test('tool arguments and tool results are text too (OpenAI and Anthropic), even under keys like name', () => {
    const openai = chat({ role: 'assistant', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'send', arguments: '{"to":"bob@example.com"}' } }] });
    expect(judgeRequest('chat', openai, refuseAll).rules).toEqual(['personal_data:email']);
    const anthropic = {
      model: 'm',
      max_tokens: 5,
      messages: [
        { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'pay', input: { name: '4111 1111 1111 1111' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: [{ type: 'text', text: 'IBAN GB82 WEST 1234 5698 7654 32' }] }] },
      ],
    };
    expect(judgeRequest('messages', anthropic, refuseAll).rules).toEqual(['personal_data:card', 'personal_data:iban']);
  });

  test('what is not caught: halves with other text between them, spelled-out forms', () => {
    const interleaved = chat({ role: 'user', content: 'card 4111 1111' }, { role: 'user', content: 'unrelated' }, { role: 'user', content: '1111 1111' });
    expect(judgeRequest('chat', interleaved, refuseAll).action).toBe('passed');
    expect(judgeRequest('chat', chat({ role: 'user', content: 'alice dot smith at example dot com' }), refuseAll).action).toBe('passed');
  });
});

describe('seams: an item complete at the end of a segment does not swallow the next segment', () => {
  const twoMessages = (a: string, b: string) => chat({ role: 'user', content: a }, { role: 'user', content: b });
  const cases = [
    { kind: 'email', first: 'write to alice@example.com', redacted: 'write to [REDACTED:email]' },
    { kind: 'phone', first: 'call me at +49 30 1234567', redacted: 'call me at [REDACTED:phone]' },
    { kind: 'card', first: 'card 4111 1111 1111 1111', redacted: 'card [REDACTED:card]' },
  ];

  test.each(cases)('$kind at the end of a message, refuse mode: still refused', ({ kind, first }) => {
    const v = judgeRequest('chat', twoMessages(first, 'summarize this'), refuseAll);
    expect(v).toMatchObject({ action: 'refused', rules: [`personal_data:${kind}`] });
  });

  test.each(cases)('$kind at the end of a message, redact mode: only that item is redacted', ({ kind, first, redacted }) => {
    const v = judgeRequest('chat', twoMessages(first, 'summarize this'), redactAll);
    expect(v.rules).toEqual([`personal_data:${kind}`]);
    expect((v.body as any).messages).toEqual([
      { role: 'user', content: redacted },
      { role: 'user', content: 'summarize this' },
    ]);
  });

  test('the same across two content parts and two Anthropic text blocks', () => {
    const parts = chat({ role: 'user', content: [{ type: 'text', text: 'mail alice@example.com' }, { type: 'text', text: 'Summarize' }] });
    expect((judgeRequest('chat', parts, redactAll).body as any).messages[0].content).toEqual([
      { type: 'text', text: 'mail [REDACTED:email]' },
      { type: 'text', text: 'Summarize' },
    ]);
    const blocks = { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'text', text: 'mail alice@example.com' }, { type: 'text', text: 'thanks' }] }] };
    expect((judgeRequest('messages', blocks, redactAll).body as any).messages[0].content[1]).toEqual({ type: 'text', text: 'thanks' });
  });

  test('empty segments between the address and the next word change nothing', () => {
    const body = chat({ role: 'user', content: [{ type: 'text', text: 'mail alice@example.com' }, { type: 'text', text: '' }, { type: 'text', text: '\u200B' }, { type: 'text', text: 'summarize' }] });
    const v = judgeRequest('chat', body, redactAll);
    expect((v.body as any).messages[0].content.map((p: any) => p.text)).toEqual(['mail [REDACTED:email]', '', '\u200B', 'summarize']);
  });

  test('a next segment that continues the address is still read as part of it', () => {
    for (const [a, b] of [
      ['write to alice@example', '.com please'],
      ['write to alice@exa', 'mple.com'],
      ['write to alice.smith', '@example.com'],
    ]) {
      expect(judgeRequest('chat', twoMessages(a, b), refuseAll).rules).toEqual(['personal_data:email']);
      const v = judgeRequest('chat', twoMessages(a, b), redactAll);
      const sent = JSON.stringify(v.body);
      expect(sent).not.toContain('alice');
      expect(sent).not.toContain('example');
    }
  });

  test('a card complete at the end of a part followed by more digits is still redacted in both parts', () => {
    const v = judgeRequest('chat', chat({ role: 'user', content: [{ type: 'text', text: 'card 4111 1111 1111 1111' }, { type: 'text', text: ' 1111 ok' }] }), redactAll);
    expect(v.rules).toContain('personal_data:card');
    expect(JSON.stringify(v.body)).not.toContain('4111');
  });
});

describe('redaction', () => {
  test('replaces the original characters (zero-width and fullwidth included) with a marker per kind', () => {
    const body = chat({ role: 'user', content: 'Mail bob@example.com, card ４１１１\u200B 1111 1111 1111, call +49 30 1234567.' });
    const v = judgeRequest('chat', body, redactAll);
    expect(v.action).toBe('redacted');
    expect(v.rules).toEqual(['personal_data:card', 'personal_data:email', 'personal_data:phone']);
    expect((v.body as any).messages[0].content).toBe('Mail [REDACTED:email], card [REDACTED:card], call [REDACTED:phone].');
    expect(body.messages[0]).toEqual({ role: 'user', content: 'Mail bob@example.com, card ４１１１\u200B 1111 1111 1111, call +49 30 1234567.' }); // input untouched
  });

  test('a card split over two content parts is redacted in both parts', () => {
    const body = chat({ role: 'user', content: [{ type: 'text', text: 'card 4111 1111 ' }, { type: 'text', text: '1111 1111 ok' }] });
    const parts = (judgeRequest('chat', body, redactAll).body as any).messages[0].content;
    expect(parts).toEqual([
      { type: 'text', text: 'card [REDACTED:card]' }, // the group separator went with the number
      { type: 'text', text: '[REDACTED:card] ok' },
    ]);
  });

  test('refuse for one kind wins over redact for another; both rules are named', () => {
    const mixed = g({ personalData: { email: 'redact', card: 'refuse' } });
    const v = judgeRequest('chat', chat({ role: 'user', content: 'a@example.com 4111111111111111' }), mixed);
    expect(v).toMatchObject({ action: 'refused', rules: ['personal_data:card', 'personal_data:email'] });
    expect(v.body).toBeUndefined();
  });

  test('embeddings inputs are judged and redacted per input', () => {
    const v = judgeRequest('embeddings', { model: 'e', input: ['fine', 'bob@example.com'] }, redactAll);
    expect((v.body as any).input).toEqual(['fine', '[REDACTED:email]']);
  });

  test('image data and structural fields are not scanned or changed', () => {
    const url = 'data:image/png;base64,NDExMTExMTExMTExMTExMQ==4111111111111111';
    const body = chat({ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'what is this' }] });
    expect(judgeRequest('chat', body, redactAll).action).toBe('passed');
  });
});

describe('maximum input tokens (estimate)', () => {
  test('pieces as a BPE pre-tokenizer splits them, 4 per message; refused exactly above the cap', () => {
    expect(estimateTextTokens('hello')).toBe(1);
    expect(estimateTextTokens('internationalization')).toBe(4);
    expect(estimateTextTokens('日本語')).toBe(3);
    expect(estimateTextTokens('1234567')).toBe(3);
    expect(estimateTextTokens('a, b')).toBe(3);
    const body = chat({ role: 'user', content: 'word '.repeat(40) });
    const n = judgeRequest('chat', body, g({ maxInputTokens: 1_000_000 })).estimatedInputTokens!;
    expect(n).toBe(4 + 40 + 1); // the message, forty words, the trailing space
    expect(judgeRequest('chat', body, g({ maxInputTokens: n })).action).toBe('passed');
    expect(judgeRequest('chat', body, g({ maxInputTokens: n - 1 }))).toMatchObject({ action: 'refused', rules: ['max_input_tokens'] });
  });
});

describe('documents, prompt variables and predicted outputs are text too', () => {
  const anthropicWith = (content: unknown[]) => ({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content }] });
  const textDoc = (data: string) => ({ type: 'document', source: { type: 'text', media_type: 'text/plain', data } });
  const contentDoc = (text: string) => ({ type: 'document', source: { type: 'content', content: [{ type: 'text', text }] } });

  test('Anthropic document blocks with text or content sources are scanned, also inside a tool_result', () => {
    expect(judgeRequest('messages', anthropicWith([textDoc('Project Nightingale alice@example.com')]), refuseAll).rules).toEqual(['blocked_term', 'personal_data:email']);
    expect(judgeRequest('messages', anthropicWith([contentDoc('card 4111 1111 1111 1111')]), refuseAll).rules).toEqual(['personal_data:card']);
    const inTool = anthropicWith([{ type: 'tool_result', tool_use_id: 't1', content: [textDoc('about project nightingale')] }]);
    expect(judgeRequest('messages', inTool, refuseAll).rules).toEqual(['blocked_term']);
  });

  test('document text is redacted in place; base64, url and file sources stay unscanned and untouched', () => {
    const body = anthropicWith([textDoc('mail alice@example.com now'), contentDoc('or bob@example.com'), { type: 'tool_result', tool_use_id: 't1', content: [textDoc('carol@example.com')] }]);
    const v = judgeRequest('messages', body, redactAll);
    expect(v.action).toBe('redacted');
    const sent = (v.body as any).messages[0].content;
    expect(sent[0]).toEqual({ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'mail [REDACTED:email] now' } });
    expect(sent[1].source.content[0].text).toBe('or [REDACTED:email]');
    expect(sent[2].content[0].source.data).toBe('[REDACTED:email]');
    expect(JSON.stringify(v.body)).not.toContain('example.com');
    const binary = anthropicWith([
      { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'alice@example.com' } },
      { type: 'document', source: { type: 'url', url: 'https://example.com/alice@example.com.pdf' } },
      { type: 'document', source: { type: 'file', file_id: 'file_alice@example.com' } },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'bob@example.com' } },
    ]);
    expect(judgeRequest('messages', binary, refuseAll).action).toBe('passed');
  });

  test('Responses prompt.variables (strings and input_text values) are scanned and redacted', () => {
    const body = { model: 'm', prompt: { id: 'pmpt_1', version: '2', variables: { note: { type: 'input_text', text: 'project nightingale!' }, customer: 'alice@example.com' } }, input: 'hi' };
    expect(judgeRequest('responses', body, refuseAll).rules).toEqual(['blocked_term', 'personal_data:email']);
    const v = judgeRequest('responses', body, redactAll);
    expect((v.body as any).prompt).toEqual({ id: 'pmpt_1', version: '2', variables: { note: { type: 'input_text', text: 'project nightingale!' }, customer: '[REDACTED:email]' } });
  });

  test('chat prediction.content (a string or text parts) is scanned and redacted', () => {
    const str = chat({ role: 'user', content: 'fix this' });
    expect(judgeRequest('chat', { ...str, prediction: { type: 'content', content: 'to: alice@example.com' } }, refuseAll).rules).toEqual(['personal_data:email']);
    const parts = { ...str, prediction: { type: 'content', content: [{ type: 'text', text: 'Project Nightingale' }, { type: 'text', text: 'bob@example.com' }] } };
    expect(judgeRequest('chat', parts, refuseAll).rules).toEqual(['blocked_term', 'personal_data:email']);
    expect((judgeRequest('chat', parts, redactAll).body as any).prediction.content[1]).toEqual({ type: 'text', text: '[REDACTED:email]' });
  });
});
