import {
  checkPriceTable,
  costMicros,
  DEFAULT_PRICES,
  formatUsd,
  microsToUsd,
  parsePriceTable,
  PriceBook,
  usdToMicros,
  worstCaseMicros,
} from '../../../lambda/core/governance/prices';

const book = new PriceBook();
const price = (provider: string, model: string, kind?: string) => book.lookup({ provider, model, kind });

describe('price lookup', () => {
  test.each([
    ['openai', 'gpt-4o', 'openai:gpt-4o', 2_500_000, 10_000_000],
    ['openai', 'gpt-4o-2024-08-06', 'openai:gpt-4o', 2_500_000, 10_000_000],
    ['openai', 'gpt-4o-2024-05-13', 'openai:gpt-4o-2024-05-13', 5_000_000, 15_000_000],
    ['openai', 'gpt-4o-mini', 'openai:gpt-4o-mini', 150_000, 600_000],
    ['openai', 'gpt-4o-mini-2024-07-18', 'openai:gpt-4o-mini', 150_000, 600_000],
    ['openai', 'gpt-4.1', 'openai:gpt-4.1', 2_000_000, 8_000_000],
    ['openai', 'gpt-4.1-mini-2025-04-14', 'openai:gpt-4.1-mini', 400_000, 1_600_000],
    ['openai', 'gpt-4.1-nano', 'openai:gpt-4.1-nano', 100_000, 400_000],
    ['openai', 'o1', 'openai:o1', 15_000_000, 60_000_000],
    ['openai', 'o1-mini', 'openai:o1-mini', 1_100_000, 4_400_000],
    ['openai', 'o3-2025-04-16', 'openai:o3', 2_000_000, 8_000_000],
    ['openai', 'o3-mini', 'openai:o3-mini', 1_100_000, 4_400_000],
    ['openai', 'o4-mini', 'openai:o4-mini', 1_100_000, 4_400_000],
    ['openai', 'text-embedding-3-small', 'openai:text-embedding-3-small', 20_000, 0],
    ['openai', 'text-embedding-3-large', 'openai:text-embedding-3-large', 130_000, 0],
    ['anthropic', 'claude-opus-4-1-20250805', 'anthropic:claude-opus-4-1', 15_000_000, 75_000_000],
    ['anthropic', 'claude-opus-4-5', 'anthropic:claude-opus-4-5', 5_000_000, 25_000_000],
    ['anthropic', 'claude-sonnet-4-5', 'anthropic:claude-sonnet-4-5', 3_000_000, 15_000_000],
    ['anthropic', 'claude-sonnet-4-20250514', 'anthropic:claude-sonnet-4', 3_000_000, 15_000_000],
    ['anthropic', 'claude-haiku-4-5', 'anthropic:claude-haiku-4-5', 1_000_000, 5_000_000],
    ['anthropic', 'claude-3-5-sonnet-latest', 'anthropic:claude-3-5-sonnet', 3_000_000, 15_000_000],
    ['anthropic', 'claude-3-5-haiku-20241022', 'anthropic:claude-3-5-haiku', 800_000, 4_000_000],
    ['anthropic', 'claude-opus-7', 'anthropic:claude-opus', 15_000_000, 75_000_000],
    ['mistral', 'mistral-large-latest', 'mistral:mistral-large', 2_000_000, 6_000_000],
    ['mistral', 'mistral-small-2503', 'mistral:mistral-small', 100_000, 300_000],
    ['mistral', 'codestral-latest', 'mistral:codestral', 300_000, 900_000],
    ['mistral', 'mistral-embed', 'mistral:mistral-embed', 100_000, 0],
  ])('%s %s → %s', (provider, model, source, input, output) => {
    const m = price(provider, model);
    expect(m.source).toBe(source);
    expect(m.entry.input).toBe(input);
    expect(m.entry.output).toBe(output);
  });

  test('longest prefix wins whatever the order of the entries', () => {
    const b = new PriceBook({ models: { x: { a: { input: 1, output: 1 }, abc: { input: 3, output: 3 }, ab: { input: 2, output: 2 } } } });
    expect(b.lookup({ provider: 'x', model: 'abcd' }).entry.input).toBe(3_000_000);
    expect(b.lookup({ provider: 'x', model: 'abx' }).entry.input).toBe(2_000_000);
    expect(b.lookup({ provider: 'x', model: 'ax' }).entry.input).toBe(1_000_000);
  });

  test('model names match case-insensitively', () => {
    expect(price('openai', 'GPT-4o-Mini').source).toBe('openai:gpt-4o-mini');
  });

  test('unknown models get the fallback price, never free', () => {
    const m = price('openai', 'some-future-model');
    expect(m.source).toBe('fallback');
    expect(m.entry.input).toBeGreaterThan(0);
    expect(m.entry.output).toBeGreaterThan(0);
    expect(price('self-hosted', 'llama-3-70b', 'openai-compatible').source).toBe('fallback');
  });

  test('a provider id without a table of its own uses its kind', () => {
    expect(price('openai-eu', 'gpt-4o', 'openai').source).toBe('openai:gpt-4o');
    const b = new PriceBook({ models: { 'openai-eu': { 'gpt-4o': { input: 3, output: 12 } } } });
    expect(b.lookup({ provider: 'openai-eu', kind: 'openai', model: 'gpt-4o' }).entry.input).toBe(3_000_000);
    expect(b.lookup({ provider: 'openai-eu', kind: 'openai', model: 'gpt-4o-mini' }).source).toBe('openai:gpt-4o-mini');
  });

  test('overrides replace single entries, keep the rest and can price a whole provider with the empty prefix', () => {
    const b = new PriceBook({
      models: { openai: { 'gpt-4o': { input: 1, output: 2 } }, 'self-hosted': { '': { input: 0, output: 0 } } },
      fallback: { input: 100, output: 200 },
      defaultMaxOutputTokens: 1000,
    });
    expect(b.lookup({ provider: 'openai', model: 'gpt-4o' }).entry).toMatchObject({ input: 1_000_000, output: 2_000_000 });
    expect(b.lookup({ provider: 'openai', model: 'gpt-4o-mini' }).entry.input).toBe(150_000);
    expect(b.lookup({ provider: 'self-hosted', model: 'anything' }).source).toBe('self-hosted:');
    expect(b.lookup({ provider: 'nobody', model: 'x' }).entry).toMatchObject({ input: 100_000_000, output: 200_000_000 });
    expect(b.defaultMaxOutputTokens).toBe(1000);
  });

  test('every default entry is a valid price table entry', () => {
    expect(() => checkPriceTable({ models: DEFAULT_PRICES })).not.toThrow();
  });
});

describe('PRICE_TABLE parsing', () => {
  test('absent or empty means defaults', () => {
    expect(parsePriceTable(undefined)).toBeUndefined();
    expect(parsePriceTable('  ')).toBeUndefined();
  });
  test('valid JSON round-trips', () => {
    const doc = { models: { openai: { 'gpt-4o': { input: 2.5, output: 10, cachedInput: 1.25 } } }, fallback: { input: 20, output: 80 } };
    expect(parsePriceTable(JSON.stringify(doc))).toEqual(doc);
  });
  test.each([
    ['not json', 'not valid JSON'],
    ['{"fallback":{"input":0,"output":0}}', 'never free'],
    ['{"models":{"openai":{"gpt-4o":{"input":-1,"output":1}}}}', 'PRICE_TABLE.models.openai.gpt-4o.input'],
    ['{"models":{"OpenAI":{"gpt-4o":{"input":1,"output":1}}}}', 'provider ids'],
    ['{"models":{"openai":{"GPT-4o":{"input":1,"output":1}}}}', 'model prefixes'],
    ['{"extra":1}', 'Unrecognized key'],
  ])('%s is rejected', (json, message) => {
    expect(() => parsePriceTable(json)).toThrow(message);
  });
});

describe('costs in integer micro-dollars', () => {
  const gpt4o = price('openai', 'gpt-4o').entry;
  const sonnet = price('anthropic', 'claude-sonnet-4-5').entry;

  test('plain input and output', () => {
    // 1000 × $2.50/M + 500 × $10/M = $0.0025 + $0.005
    expect(costMicros(gpt4o, { inputTokens: 1000, outputTokens: 500 })).toBe(7_500);
  });

  test('cache reads are cheaper, cache writes dearer', () => {
    // 10000 input of which 8000 cache reads ($0.30/M) and 1000 cache writes ($3.75/M), 1000 plain ($3/M)
    const c = costMicros(sonnet, { inputTokens: 10_000, outputTokens: 0, cacheReadInputTokens: 8_000, cacheCreationInputTokens: 1_000 });
    expect(c).toBe(2_400 + 3_750 + 3_000);
    expect(costMicros(gpt4o, { inputTokens: 1000, outputTokens: 0, cacheReadInputTokens: 1000 })).toBe(1_250);
  });

  test('fractions of a micro-dollar round up, once per call', () => {
    // 1 token of gpt-4o-mini input = 0.15 µ$ → 1 µ$
    expect(costMicros(price('openai', 'gpt-4o-mini').entry, { inputTokens: 1, outputTokens: 0 })).toBe(1);
    expect(costMicros(gpt4o, { inputTokens: 0, outputTokens: 0 })).toBe(0);
  });

  test('no float drift: a million small calls sum exactly', () => {
    let sum = 0;
    for (let i = 0; i < 1_000_000; i++) sum += costMicros(gpt4o, { inputTokens: 4, outputTokens: 1 });
    expect(sum).toBe(1_000_000 * 20);
    expect(microsToUsd(sum)).toBe(20);
  });

  test('huge counts stay exact (BigInt inside)', () => {
    const dear = new PriceBook({ models: { x: { '': { input: 100_000, output: 100_000 } } } }).lookup({ provider: 'x', model: 'm' }).entry;
    expect(costMicros(dear, { inputTokens: 1_000_000_000, outputTokens: 0 })).toBe(100_000_000_000_000);
  });

  test('worst case prices every input token at the dearest input price', () => {
    // 1000 × $3.75/M (cache write) + 100 × $15/M
    expect(worstCaseMicros(sonnet, 1000, 100)).toBe(3_750 + 1_500);
    expect(worstCaseMicros(gpt4o, 1000, 100)).toBe(2_500 + 1_000);
  });

  test('usd conversions and formatting', () => {
    expect(usdToMicros(0.1)).toBe(100_000);
    expect(usdToMicros(12.345678)).toBe(12_345_678);
    expect(formatUsd(10_000_000)).toBe('$10.00');
    expect(formatUsd(12_340)).toBe('$0.0123');
    expect(formatUsd(12)).toBe('$0.000012');
    expect(formatUsd(0)).toBe('$0.00');
  });
});
