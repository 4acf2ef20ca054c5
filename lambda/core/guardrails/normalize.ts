/**
 * Text as guardrails compare it: NFKC, case-folded, default-ignorable code points (zero-width
 * spaces and joiners, soft hyphens, bidi controls, variation selectors, tag characters) removed,
 * whitespace runs collapsed to one space. Each normalized character remembers the span of the
 * original text it came from, so a match found in normalized text redacts the right original
 * characters (a zero-width space inside a card number is redacted with it).
 *
 * Normalization runs per cluster (a code point and its combining marks), so composition inside
 * a cluster (e + U+0301 -> é) still happens and the offset map stays exact.
 */

export interface NormalizedText {
  readonly text: string;
  /** Original start offset (UTF-16) of each normalized character. */
  readonly from: Int32Array;
  /** Original end offset (exclusive) of each normalized character. */
  readonly to: Int32Array;
}

const IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu;
const MARK = /\p{M}/u;
const SPACE = /\s/u;

/** NFKC + case fold + ignorables removed, for a short piece of text (a cluster or a blocked term). */
export function foldText(s: string): string {
  // toUpperCase().toLowerCase() folds ß -> ss and ﬀ-like specials the way full case folding does.
  return s.normalize('NFKC').toUpperCase().toLowerCase().normalize('NFKC').replace(IGNORABLE, '');
}

/** A blocked term in the form it is searched for: folded, whitespace collapsed, trimmed. */
export function foldTerm(term: string): string {
  return foldText(term).replace(/\s+/gu, ' ').trim();
}

export function normalizeText(input: string): NormalizedText {
  const out: string[] = [];
  const from: number[] = [];
  const to: number[] = [];
  let lastSpace = false;
  const emit = (chars: string, start: number, end: number) => {
    for (const ch of chars) {
      if (SPACE.test(ch)) {
        if (lastSpace) {
          to[to.length - 1] = end; // the collapsed run covers this one too
          continue;
        }
        lastSpace = true;
        out.push(' ');
      } else {
        lastSpace = false;
        out.push(ch);
      }
      from.push(start);
      to.push(end);
    }
  };
  let i = 0;
  while (i < input.length) {
    const c = input.charCodeAt(i);
    // (Not when a combining mark follows: the pair is one cluster.)
    if (c < 0x80 && !(i + 1 < input.length && input.charCodeAt(i + 1) >= 0x300 && MARK.test(input[i + 1]))) {
      // ASCII fast path: NFKC is the identity, folding is A-Z -> a-z.
      emit(c >= 65 && c <= 90 ? String.fromCharCode(c + 32) : input[i], i, i + 1);
      i += 1;
      continue;
    }
    // One cluster: a code point and the combining marks after it.
    let end = i + (c >= 0xd800 && c <= 0xdbff && i + 1 < input.length ? 2 : 1);
    while (end < input.length) {
      const cp = input.codePointAt(end)!;
      const ch = String.fromCodePoint(cp);
      if (!MARK.test(ch)) break;
      end += ch.length;
    }
    emit(foldText(input.slice(i, end)), i, end);
    i = end;
  }
  return { text: out.join(''), from: Int32Array.from(from), to: Int32Array.from(to) };
}
