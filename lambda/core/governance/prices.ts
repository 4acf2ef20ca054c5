/**
 * The price table: USD per million tokens, per provider and model prefix (longest prefix wins),
 * held internally as integer micro-dollars per million tokens so that sums never drift.
 *
 * Defaults cover current OpenAI, Anthropic and Mistral models (list prices, standard tier); an
 * operator overrides or extends them with the construct's `prices` prop (PRICE_TABLE). A model
 * no entry matches is charged the fallback price, which is deliberately high and never zero, so
 * a budget holds even for a model nobody priced.
 */
import { z } from 'zod';
import type { TokenUsage } from '../translate/usage';

/** Micro-dollars (1e-6 USD) in one USD. */
export const MICROS_PER_USD = 1_000_000;
const TOKENS_PER_PRICE_UNIT = 1_000_000n;

export const usdToMicros = (usd: number): number => Math.round(usd * MICROS_PER_USD);
export const microsToUsd = (micros: number): number => micros / MICROS_PER_USD;

const usdPerMillion = z.number().finite().min(0).max(100_000);
const MODEL_PREFIX = /^[a-z0-9._:/@-]{0,128}$/;
const PROVIDER_ID = /^[a-z][a-z0-9-]{1,31}$/;

/** One price, in USD per million tokens, as an operator writes it. */
export const priceSchema = z
  .object({
    /** Uncached input. */
    input: usdPerMillion,
    output: usdPerMillion,
    /** Input served from the prompt cache. @default input */
    cachedInput: usdPerMillion.optional(),
    /** Input written to the prompt cache (Anthropic). @default input */
    cacheWrite: usdPerMillion.optional(),
    /** Largest output the model can produce: the worst case when a request sets no max_tokens. */
    maxOutputTokens: z.number().int().min(0).max(10_000_000).optional(),
  })
  .strict();
export type PriceInput = z.infer<typeof priceSchema>;

/** The PRICE_TABLE document: overrides merged over the defaults. */
export const priceTableSchema = z
  .object({
    /** provider id (or provider kind) → model prefix (lower case; '' matches every model) → price. */
    models: z
      .record(
        z.string().regex(PROVIDER_ID, 'provider ids are lower-case letters, digits and -'),
        z.record(z.string().regex(MODEL_PREFIX, 'model prefixes are lower-case letters, digits and . _ : / @ -'), priceSchema),
      )
      .optional(),
    /** Price of a model no entry matches. Never free: both prices must be positive. */
    fallback: priceSchema
      .refine((p) => p.input > 0 && p.output > 0, 'the fallback price must be positive (unknown models are never free)')
      .optional(),
    /** Worst-case output when neither the request nor the price entry bounds it. */
    defaultMaxOutputTokens: z.number().int().min(1).max(10_000_000).optional(),
  })
  .strict();
export type PriceTableConfig = z.infer<typeof priceTableSchema>;

/** A price in integer micro-dollars per million tokens. */
export interface PriceEntry {
  readonly input: number;
  readonly output: number;
  readonly cachedInput: number;
  readonly cacheWrite: number;
  readonly maxOutputTokens?: number;
}

export interface PriceMatch {
  readonly entry: PriceEntry;
  /** `<table>:<prefix>` of the entry used, or `fallback`. */
  readonly source: string;
}

/** Conservative price of an unpriced model: at the top of current list prices. */
export const DEFAULT_FALLBACK_PRICE: PriceInput = { input: 15, output: 75 };
export const DEFAULT_MAX_OUTPUT_TOKENS = 32_768;

const p = (input: number, output: number, maxOutputTokens?: number, extra: Partial<PriceInput> = {}): PriceInput => ({
  input,
  output,
  ...extra,
  ...(maxOutputTokens !== undefined ? { maxOutputTokens } : {}),
});
const cached = (input: number, output: number, cachedInput: number, maxOutputTokens: number) => p(input, output, maxOutputTokens, { cachedInput });
/** Anthropic: cache reads at 0.1x input, 5-minute cache writes at 1.25x input. */
const claude = (input: number, output: number, maxOutputTokens: number) =>
  p(input, output, maxOutputTokens, { cachedInput: input / 10, cacheWrite: input * 1.25 });

/** List prices (USD per million tokens, standard tier). Override any entry with the `prices` prop. */
export const DEFAULT_PRICES: Readonly<Record<string, Readonly<Record<string, PriceInput>>>> = {
  openai: {
    'gpt-5': cached(1.25, 10, 0.125, 128_000),
    'gpt-5-mini': cached(0.25, 2, 0.025, 128_000),
    'gpt-5-nano': cached(0.05, 0.4, 0.005, 128_000),
    'gpt-5-pro': p(15, 120, 272_000),
    'gpt-4.1': cached(2, 8, 0.5, 32_768),
    'gpt-4.1-mini': cached(0.4, 1.6, 0.1, 32_768),
    'gpt-4.1-nano': cached(0.1, 0.4, 0.025, 32_768),
    'gpt-4.5': p(75, 150, 16_384),
    'gpt-4o': cached(2.5, 10, 1.25, 16_384),
    'gpt-4o-2024-05-13': p(5, 15, 4_096),
    'chatgpt-4o': p(5, 15, 16_384),
    'gpt-4o-mini': cached(0.15, 0.6, 0.075, 16_384),
    'gpt-4-turbo': p(10, 30, 4_096),
    'gpt-4': p(30, 60, 8_192),
    'gpt-3.5-turbo': p(0.5, 1.5, 4_096),
    o1: cached(15, 60, 7.5, 100_000),
    'o1-mini': cached(1.1, 4.4, 0.55, 65_536),
    'o1-pro': p(150, 600, 100_000),
    o3: cached(2, 8, 0.5, 100_000),
    'o3-mini': cached(1.1, 4.4, 0.55, 100_000),
    'o3-pro': p(20, 80, 100_000),
    'o3-deep-research': cached(10, 40, 2.5, 100_000),
    'o4-mini': cached(1.1, 4.4, 0.275, 100_000),
    'o4-mini-deep-research': cached(2, 8, 0.5, 100_000),
    'text-embedding-3-small': p(0.02, 0, 0),
    'text-embedding-3-large': p(0.13, 0, 0),
    'text-embedding-ada-002': p(0.1, 0, 0),
  },
  anthropic: {
    // Family entries price future versions of a family until they are listed.
    'claude-opus': claude(15, 75, 32_000),
    'claude-opus-4': claude(15, 75, 32_000),
    'claude-opus-4-1': claude(15, 75, 32_000),
    'claude-opus-4-5': claude(5, 25, 64_000),
    'claude-sonnet': claude(3, 15, 64_000),
    'claude-sonnet-4': claude(3, 15, 64_000),
    'claude-sonnet-4-5': claude(3, 15, 64_000),
    'claude-haiku': claude(1, 5, 64_000),
    'claude-haiku-4-5': claude(1, 5, 64_000),
    'claude-3-7-sonnet': claude(3, 15, 64_000),
    'claude-3-5-sonnet': claude(3, 15, 8_192),
    'claude-3-5-haiku': claude(0.8, 4, 8_192),
    'claude-3-opus': claude(15, 75, 4_096),
    'claude-3-sonnet': claude(3, 15, 4_096),
    'claude-3-haiku': claude(0.25, 1.25, 4_096),
  },
  mistral: {
    'mistral-large': p(2, 6, 32_768),
    'pixtral-large': p(2, 6, 32_768),
    'mistral-medium': p(0.4, 2, 32_768),
    'magistral-medium': p(2, 5, 40_000),
    'mistral-small': p(0.1, 0.3, 32_768),
    'magistral-small': p(0.5, 1.5, 40_000),
    codestral: p(0.3, 0.9, 32_768),
    'devstral-small': p(0.1, 0.3, 32_768),
    'devstral-medium': p(0.4, 2, 32_768),
    'ministral-8b': p(0.1, 0.1, 32_768),
    'ministral-3b': p(0.04, 0.04, 32_768),
    'open-mistral-nemo': p(0.15, 0.15, 32_768),
    'mistral-embed': p(0.1, 0, 0),
    'codestral-embed': p(0.15, 0, 0),
  },
};

function toEntry(price: PriceInput): PriceEntry {
  return {
    input: usdToMicros(price.input),
    output: usdToMicros(price.output),
    cachedInput: usdToMicros(price.cachedInput ?? price.input),
    cacheWrite: usdToMicros(price.cacheWrite ?? price.input),
    ...(price.maxOutputTokens !== undefined ? { maxOutputTokens: price.maxOutputTokens } : {}),
  };
}

/** Parses PRICE_TABLE (JSON); undefined or empty means defaults only. Throws a readable error. */
export function parsePriceTable(json: string | undefined): PriceTableConfig | undefined {
  if (json === undefined || json.trim() === '') return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new Error('PRICE_TABLE is not valid JSON');
  }
  return checkPriceTable(raw, 'PRICE_TABLE');
}

/** Validates a price table document; the error names every field at fault. */
export function checkPriceTable(raw: unknown, where = 'prices'): PriceTableConfig {
  const result = priceTableSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${[where, ...i.path].join('.')}: ${i.message}`).join('; ');
    throw new Error(`Invalid price table: ${problems}`);
  }
  return result.data;
}

/** Prices by provider and model, defaults merged with an operator's overrides. */
export class PriceBook {
  private readonly tables = new Map<string, { prefix: string; entry: PriceEntry }[]>();
  readonly fallback: PriceEntry;
  readonly defaultMaxOutputTokens: number;

  constructor(overrides: PriceTableConfig = {}) {
    const merged = new Map<string, Map<string, PriceInput>>();
    for (const source of [DEFAULT_PRICES, overrides.models ?? {}]) {
      for (const [provider, models] of Object.entries(source)) {
        const table = merged.get(provider) ?? new Map<string, PriceInput>();
        for (const [prefix, price] of Object.entries(models)) table.set(prefix.toLowerCase(), price);
        merged.set(provider, table);
      }
    }
    for (const [provider, table] of merged) {
      const rows = [...table].map(([prefix, price]) => ({ prefix, entry: toEntry(price) }));
      rows.sort((a, b) => b.prefix.length - a.prefix.length);
      this.tables.set(provider, rows);
    }
    this.fallback = toEntry(overrides.fallback ?? DEFAULT_FALLBACK_PRICE);
    this.defaultMaxOutputTokens = overrides.defaultMaxOutputTokens ?? DEFAULT_MAX_OUTPUT_TOKENS;
  }

  /**
   * The price of a model at a provider: the longest matching prefix in the provider id's table or
   * in its kind's (so an operator's `openai-eu` endpoint of kind `openai` gets OpenAI's prices);
   * on equal length the provider id's entry wins. No match: the fallback price.
   */
  lookup(target: { readonly provider: string; readonly kind?: string; readonly model: string }): PriceMatch {
    const model = target.model.toLowerCase();
    let best: { table: string; prefix: string; entry: PriceEntry } | undefined;
    for (const table of new Set([target.provider, target.kind ?? target.provider])) {
      const hit = this.tables.get(table)?.find((row) => model.startsWith(row.prefix));
      if (hit && (!best || hit.prefix.length > best.prefix.length)) best = { table, ...hit };
    }
    return best ? { entry: best.entry, source: `${best.table}:${best.prefix}` } : { entry: this.fallback, source: 'fallback' };
  }
}

/** ceil(Σ tokens × micros-per-million / 1e6): rounding always favours the budget. */
function micros(terms: readonly (readonly [tokens: number, microsPerMillion: number])[]): number {
  let total = 0n;
  for (const [tokens, price] of terms) {
    if (tokens > 0 && price > 0) total += BigInt(Math.ceil(tokens)) * BigInt(price);
  }
  return Number((total + TOKENS_PER_PRICE_UNIT - 1n) / TOKENS_PER_PRICE_UNIT);
}

/** Real cost of a call from the provider's usage counts. */
export function costMicros(entry: PriceEntry, usage: TokenUsage): number {
  const cacheRead = Math.max(0, usage.cacheReadInputTokens ?? 0);
  const cacheWrite = Math.max(0, usage.cacheCreationInputTokens ?? 0);
  const plain = Math.max(0, usage.inputTokens - cacheRead - cacheWrite);
  return micros([
    [plain, entry.input],
    [cacheRead, entry.cachedInput],
    [cacheWrite, entry.cacheWrite],
    [usage.outputTokens, entry.output],
  ]);
}

/** Worst case of a call: every input token at the dearest input price, plus the full output. */
export function worstCaseMicros(entry: PriceEntry, inputTokens: number, outputTokens: number): number {
  return micros([
    [inputTokens, Math.max(entry.input, entry.cachedInput, entry.cacheWrite)],
    [outputTokens, entry.output],
  ]);
}

/** A USD amount for messages: at least cents, more digits for sub-cent amounts. */
export function formatUsd(micros: number): string {
  const usd = microsToUsd(micros);
  const digits = Math.abs(usd) >= 1 || usd === 0 ? 2 : Math.abs(usd) >= 0.01 ? 4 : 6;
  return `$${usd.toFixed(digits)}`;
}
