/**
 * The input-size estimator behind `maxInputTokens`. No tokenizer is bundled (the router stays
 * small and provider-neutral), so the count is an estimate, chosen to err towards counting more:
 *
 *   tokens = sum over text segments of ( ceil(ASCII characters / 4) + non-ASCII code points )
 *            + 4 per message
 *
 * English prose runs at about 4 characters per token in the OpenAI and Anthropic tokenizers; CJK
 * text at about one token per character; other non-ASCII letters are counted one token each,
 * which over-counts accented Latin text. The 4 per message is the chat format's overhead.
 */
import type { Segment } from './segments';
import { messageCount } from './segments';

export const TOKENS_PER_MESSAGE = 4;

export function estimateTextTokens(text: string): number {
  let ascii = 0;
  let other = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) ascii += 1;
    else if (c < 0xdc00 || c > 0xdfff) other += 1; // a surrogate pair counts once
  }
  return Math.ceil(ascii / 4) + other;
}

export function estimateInputTokens(segments: readonly Segment[]): number {
  let total = messageCount(segments) * TOKENS_PER_MESSAGE;
  for (const s of segments) total += estimateTextTokens(s.text);
  return total;
}
