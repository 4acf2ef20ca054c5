/**
 * The input-size estimator behind `maxInputTokens`. No tokenizer is bundled (its rank tables are
 * megabytes, and providers differ), so the count is an estimate that follows how BPE tokenizers
 * (OpenAI's o200k/cl100k, Anthropic's) split text before merging:
 *
 *   a run of Latin letters        ceil(length / 5)       (most English words are one token)
 *   a run of other letters        ceil(length / 3)       (Cyrillic, Greek, Arabic, Indic...)
 *   a CJK, kana or Hangul char    1
 *   a run of digits               ceil(length / 3)       (numbers are split in threes)
 *   a run of punctuation/symbols  ceil(length / 2)
 *   a whitespace run other than one space before a word: 1
 *   per message                   4                       (the chat format's overhead)
 *
 * Measured against o200k_base and cl100k_base (test/unit/guardrails/token-estimate.test.ts), it
 * lands between 0.8 and 1.45 times the tokenizer's count on English, German, French, Japanese,
 * Russian, code, JSON and digit-heavy text: it mostly errs towards counting more.
 */
import type { Segment } from './segments';
import { messageCount } from './segments';

export const TOKENS_PER_MESSAGE = 4;

type Kind = 'latin' | 'cjk' | 'other' | 'digit' | 'space' | 'punct';

const LATIN = /\p{Script=Latin}/u;
const CJK = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;
const LETTER = /\p{L}/u;
const MARK = /\p{M}/u;
const DIGIT = /\p{Nd}/u;
const SPACE = /\s/u;

function kindOf(code: number, ch: string): Kind | 'mark' {
  if (code < 0x80) {
    if ((code >= 97 && code <= 122) || (code >= 65 && code <= 90)) return 'latin';
    if (code >= 48 && code <= 57) return 'digit';
    if (code === 32 || (code >= 9 && code <= 13)) return 'space';
    return 'punct';
  }
  if (LATIN.test(ch)) return 'latin';
  if (CJK.test(ch)) return 'cjk';
  if (LETTER.test(ch)) return 'other';
  if (MARK.test(ch)) return 'mark';
  if (DIGIT.test(ch)) return 'digit';
  if (SPACE.test(ch)) return 'space';
  return 'punct';
}

const PER_TOKEN: Record<Kind, number> = { latin: 5, cjk: 1, other: 3, digit: 3, space: Infinity, punct: 2 };

export function estimateTextTokens(text: string): number {
  let total = 0;
  let kind: Kind | undefined;
  let run = 0;
  const close = () => {
    if (kind === undefined || run === 0) return;
    // A whitespace run counts once; a single space before a word or number joins it.
    total += kind === 'space' ? 1 : kind === 'cjk' ? run : Math.ceil(run / PER_TOKEN[kind]);
  };
  for (let i = 0; i < text.length; ) {
    const code = text.codePointAt(i)!;
    const width = code > 0xffff ? 2 : 1;
    const ch = code < 0x80 ? '' : text.slice(i, i + width);
    let k = kindOf(code, ch);
    // Combining marks stay with the letters they follow (and count as symbols on their own).
    if (k === 'mark') k = kind === 'latin' || kind === 'other' ? kind : 'punct';
    if (code === 32 && kind !== 'space' && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      const nk = kindOf(next, next < 0x80 ? '' : String.fromCodePoint(text.codePointAt(i + 1)!));
      if (nk !== 'space' && nk !== 'punct' && nk !== 'mark') {
        close();
        kind = undefined;
        run = 0;
        i += 1;
        continue;
      }
    }
    if (k !== kind || k === 'cjk') {
      close();
      kind = k;
      run = 0;
    }
    run += width;
    i += width;
  }
  close();
  return total;
}

export function estimateInputTokens(segments: readonly Segment[]): number {
  let total = messageCount(segments) * TOKENS_PER_MESSAGE;
  for (const s of segments) total += estimateTextTokens(s.text);
  return total;
}
