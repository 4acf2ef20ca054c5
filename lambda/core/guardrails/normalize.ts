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
  /** Original start offset (UTF-16) of the normalized character at `i`. */
  from(i: number): number;
  /** Original end offset (exclusive) of the normalized character at `i`. */
  to(i: number): number;
}

/** ASCII without whitespace runs normalizes character for character (lower case, one space per whitespace). */
const NEEDS_MAP = /[^\t-\r -~]|\s\s/; // a character outside printable ASCII and its whitespace, or a whitespace run
const identity = (i: number) => i;
const next = (i: number) => i + 1;

const IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu;
const MARK = /\p{M}/u;

/** NFKC + case fold + ignorables removed, for a short piece of text (a cluster or a blocked term). */
export function foldText(s: string): string {
  // toUpperCase().toLowerCase() folds ß -> ss and ﬀ-like specials the way full case folding does.
  return s.normalize('NFKC').toUpperCase().toLowerCase().normalize('NFKC').replace(IGNORABLE, '');
}

/** A blocked term in the form it is searched for: folded, whitespace collapsed, trimmed. */
export function foldTerm(term: string): string {
  return foldText(term).replace(/\s+/gu, ' ').trim();
}

/** Whitespace code units (as /\s/u), without a regex per character. */
function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13) || (c >= 0x80 && (c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff));
}

export function normalizeText(input: string): NormalizedText {
  // Most prompts are ASCII: then the map is the identity and no buffers are needed.
  if (!NEEDS_MAP.test(input)) return { text: input.toLowerCase().replace(/[\t\n\v\f\r]/g, ' '), from: identity, to: next };
  // Typed buffers grown on demand: this runs over every character of every request it judges.
  let cap = input.length + 16;
  let out = new Uint16Array(cap);
  let from = new Int32Array(cap);
  let to = new Int32Array(cap);
  let n = 0;
  let lastSpace = false;
  const push = (code: number, start: number, end: number) => {
    if (isSpace(code)) {
      if (lastSpace) {
        to[n - 1] = end; // the collapsed run covers this one too
        return;
      }
      lastSpace = true;
      code = 32;
    } else {
      lastSpace = false;
    }
    if (n === cap) {
      cap *= 2;
      const [o, f, t] = [new Uint16Array(cap), new Int32Array(cap), new Int32Array(cap)];
      o.set(out);
      f.set(from);
      t.set(to);
      [out, from, to] = [o, f, t];
    }
    out[n] = code;
    from[n] = start;
    to[n] = end;
    n += 1;
  };
  let i = 0;
  const len = input.length;
  while (i < len) {
    const c = input.charCodeAt(i);
    // ASCII fast path: NFKC is the identity, folding is A-Z -> a-z. Not when a combining mark
    // follows: the pair is one cluster.
    if (c < 0x80 && !(i + 1 < len && input.charCodeAt(i + 1) >= 0x300 && MARK.test(input[i + 1]))) {
      push(c >= 65 && c <= 90 ? c + 32 : c, i, i + 1);
      i += 1;
      continue;
    }
    // One cluster: a code point and the combining marks after it.
    let end = i + (c >= 0xd800 && c <= 0xdbff && i + 1 < len ? 2 : 1);
    while (end < len) {
      const cp = input.codePointAt(end)!;
      const ch = String.fromCodePoint(cp);
      if (!MARK.test(ch)) break;
      end += ch.length;
    }
    const folded = foldText(input.slice(i, end));
    for (let k = 0; k < folded.length; k++) push(folded.charCodeAt(k), i, end);
    i = end;
  }
  const [f, t] = [from, to];
  return { text: Buffer.from(out.buffer, 0, n * 2).toString('utf16le'), from: (k) => f[k], to: (k) => t[k] };
}
