/**
 * Personal-data detectors over normalized text (normalize.ts: folded, digits as ASCII). Each
 * returns spans [start, end) in that text. Checksums keep false positives down: a card number
 * must pass Luhn, an IBAN must have its country's length and pass ISO 7064 mod 97-10.
 */

export type PiiKind = 'email' | 'phone' | 'card' | 'iban';
export const PII_KINDS: readonly PiiKind[] = ['email', 'phone', 'card', 'iban'];

export interface Span {
  readonly start: number;
  readonly end: number;
}

const EMAIL_DOMAIN = /[\p{L}\p{N}-]+(?:\.[\p{L}\p{N}-]+)*\.\p{L}{2,}/uy;
// Digits with at most one space or dash between them, not inside a longer run of digits.
const DIGIT_RUN = /(?<!\p{N})\d(?:[ -]?\d){11,}(?!\p{N})/gu;
const IBAN_CANDIDATE = /(?<![\p{L}\p{N}])[a-z]{2}\d{2}(?: ?[a-z0-9]){11,30}/gu;
const LETTER_DIGIT_PLUS = /[\p{L}\p{N}+]/u;
const NUMBER = /\p{N}/u;

const LOCAL_CHAR = /[\p{L}\p{N}._%+-]/u;
const isLocalChar = (c: number, ch: string) =>
  c < 0x80 ? (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 46 || c === 95 || c === 37 || c === 43 || c === 45 : LOCAL_CHAR.test(ch);

/**
 * E-mail addresses: local part, @, a domain with at least one dot and a TLD of 2+ letters.
 * Anchored on each '@' (a regex scan from every position costs seconds per megabyte).
 */
export function findEmails(text: string): Span[] {
  const spans: Span[] = [];
  let after = 0;
  for (let at = text.indexOf('@'); at >= 0; at = text.indexOf('@', at + 1)) {
    let start = at;
    while (start > after && isLocalChar(text.charCodeAt(start - 1), text[start - 1])) start -= 1;
    if (start === at) continue;
    EMAIL_DOMAIN.lastIndex = at + 1;
    const m = EMAIL_DOMAIN.exec(text);
    if (!m) continue;
    spans.push({ start, end: at + 1 + m[0].length });
    after = at + 1 + m[0].length;
  }
  return spans;
}

/** Luhn (ISO/IEC 7812) over a string of ASCII digits. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

const isCard = (digits: string) => digits.length >= 13 && digits.length <= 19 && digits[0] >= '2' && digits[0] <= '6' && luhnValid(digits);

/**
 * Payment card numbers: 13-19 digits starting 2-6 (the major networks' ranges) that pass Luhn,
 * written together or in groups. Within a longer grouped run (a card followed by a year), any
 * sequence of whole consecutive groups is tried.
 */
export function findCards(text: string): Span[] {
  const spans: Span[] = [];
  for (const m of text.matchAll(DIGIT_RUN)) {
    const run = m[0];
    const digits = run.replace(/[ -]/g, '');
    if (isCard(digits)) {
      spans.push({ start: m.index, end: m.index + run.length });
      continue;
    }
    const groups = [...run.matchAll(/\d+/g)].map((g) => ({ start: m.index + g.index, end: m.index + g.index + g[0].length, digits: g[0] }));
    let found = false;
    for (let i = 0; i < groups.length && !found; i++) {
      let acc = '';
      for (let j = i; j < groups.length; j++) {
        acc += groups[j].digits;
        if (acc.length > 19) break;
        if (isCard(acc)) {
          spans.push({ start: groups[i].start, end: groups[j].end });
          found = true;
          break;
        }
      }
    }
  }
  return spans;
}

/** IBAN lengths by country (SWIFT IBAN registry). Unknown countries are not detected. */
const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  ad: 24, ae: 23, al: 28, at: 20, az: 28, ba: 20, be: 16, bg: 22, bh: 22, br: 29, by: 28, ch: 21, cr: 22, cy: 28, cz: 24,
  de: 22, dk: 18, do: 28, ee: 20, eg: 29, es: 24, fi: 18, fo: 18, fr: 27, gb: 22, ge: 22, gi: 23, gl: 18, gr: 27, gt: 28,
  hr: 21, hu: 28, ie: 22, il: 23, iq: 23, is: 26, it: 27, jo: 30, kw: 30, kz: 20, lb: 28, lc: 32, li: 21, lt: 20, lu: 20,
  lv: 21, ly: 25, mc: 27, md: 24, me: 22, mk: 19, mr: 27, mt: 31, mu: 30, nl: 18, no: 15, pk: 24, pl: 28, ps: 29, pt: 25,
  qa: 29, ro: 24, rs: 22, sa: 24, sc: 31, se: 24, si: 19, sk: 24, sm: 27, st: 25, sv: 28, tl: 23, tn: 24, tr: 26, ua: 29,
  va: 22, vg: 24, xk: 20,
};

/** ISO 13616 check: move the first four characters to the end, letters to 10-35, mod 97 == 1. */
export function ibanValid(iban: string): boolean {
  const s = iban.toLowerCase();
  if (IBAN_LENGTHS[s.slice(0, 2)] !== s.length || !/^[a-z]{2}\d{2}[a-z0-9]+$/.test(s)) return false;
  const moved = s.slice(4) + s.slice(0, 4);
  let rem = 0;
  for (const ch of moved) {
    const v = ch >= 'a' ? ch.charCodeAt(0) - 87 : ch.charCodeAt(0) - 48;
    rem = v > 9 ? (rem * 100 + v) % 97 : (rem * 10 + v) % 97;
  }
  return rem === 1;
}

export function findIbans(text: string): Span[] {
  const spans: Span[] = [];
  // A candidate may swallow following words and the next IBAN: after each one, resume just
  // past what was used (the IBAN found, or the candidate's first character).
  const re = new RegExp(IBAN_CANDIDATE);
  for (let m = re.exec(text); m; m = re.exec(text)) {
    re.lastIndex = m.index + 1;
    const want = IBAN_LENGTHS[m[0].slice(0, 2)];
    if (want === undefined) continue;
    // The candidate may run on into following words: take exactly the country's length.
    let count = 0;
    let end = -1;
    for (let i = 0; i < m[0].length; i++) {
      if (m[0][i] === ' ') continue;
      count += 1;
      if (count === want) {
        end = i + 1;
        break;
      }
    }
    if (end < 0) continue;
    const next = m[0][end];
    if (next !== undefined && next !== ' ') continue; // longer than an IBAN of that country
    if (ibanValid(m[0].slice(0, end).replace(/ /g, ''))) {
      spans.push({ start: m.index, end: m.index + end });
      re.lastIndex = m.index + end;
    }
  }
  return spans;
}

/**
 * Phone numbers (a heuristic, documented in the README): 8-15 digits (E.164's maximum) in
 * groups, that either start with an international prefix (+ or 00) or a trunk 0 or an area code
 * in parentheses, or are written as 10-11 digits in at least three separated groups (NANP
 * style "415-555-0100"). A bare run of digits without any of these marks is not a phone number
 * here (it is as likely an order number), and runs that are card numbers are reported as cards.
 */
export function findPhones(text: string): Span[] {
  const spans: Span[] = [];
  for (let i = 0; i < text.length; ) {
    const c = text.charCodeAt(i);
    if (!(c === 43 || c === 40 || isDigit(c)) || precededByLetterDigitPlus(text, i)) {
      i += 1;
      continue;
    }
    const end = phoneMatchEnd(text, i);
    if (end < 0) {
      i += 1;
      continue;
    }
    if (isPhone(text.slice(i, end))) spans.push({ start: i, end });
    i = end;
  }
  return spans;
}

const isDigit = (c: number) => c >= 48 && c <= 57;
const isSeparator = (c: number) => c === 32 || c === 46 || c === 45;

function precededByLetterDigitPlus(text: string, i: number): boolean {
  if (i === 0) return false;
  const prev = text.codePointAt(i >= 2 && text.charCodeAt(i - 1) >= 0xdc00 && text.charCodeAt(i - 1) <= 0xdfff ? i - 2 : i - 1)!;
  return LETTER_DIGIT_PLUS.test(String.fromCodePoint(prev));
}

/** A group at i: a run of digits, or 1-5 digits in parentheses. Returns its end, or -1. */
function groupEnd(text: string, i: number): number {
  if (text.charCodeAt(i) === 40) {
    let j = i + 1;
    while (j < text.length && isDigit(text.charCodeAt(j)) && j - i <= 5) j += 1;
    return j > i + 1 && text.charCodeAt(j) === 41 ? j + 1 : -1;
  }
  let j = i;
  while (j < text.length && isDigit(text.charCodeAt(j))) j += 1;
  return j > i ? j : -1;
}

/**
 * The end of the phone-like text at `start`: an optional + or 00, then groups joined by at most one of
 * space, dot or dash, at most seven groups of at most five digits (a longer run counts as several
 * groups, as if split), ending where no number character follows; the longest such prefix, or -1.
 * One left-to-right pass over at most seven groups: the regex with nested quantifiers this
 * replaced backtracked for ~10 s on a 1 MB body of long digit runs.
 */
function phoneMatchEnd(text: string, start: number): number {
  // The international prefix (+ or 00) is not a group; a separator may not follow it.
  const c = text.charCodeAt(start);
  const zeroZero = c === 48 && text.charCodeAt(start + 1) === 48 && (isDigit(text.charCodeAt(start + 2)) || text.charCodeAt(start + 2) === 40);
  let pos = c === 43 ? start + 1 : zeroZero ? start + 2 : start;
  let groups = 0;
  let best = -1;
  for (let first = true; ; first = false) {
    const at = !first && isSeparator(text.charCodeAt(pos)) ? pos + 1 : pos;
    const end = groupEnd(text, at);
    if (end < 0) break;
    groups += text.charCodeAt(at) === 40 ? 1 : Math.ceil((end - at) / 5);
    if (groups > 7) break;
    if (groups >= 2 && !followedByNumber(text, end)) best = end;
    pos = end;
  }
  return best;
}

function followedByNumber(text: string, i: number): boolean {
  if (i >= text.length) return false;
  const c = text.charCodeAt(i);
  return isDigit(c) || (c >= 0x80 && NUMBER.test(String.fromCodePoint(text.codePointAt(i)!)));
}

/** The rules of the heuristic above (findPhones), on one candidate. */
function isPhone(s: string): boolean {
  const digits = s.replace(/\D/g, '');
  if (digits.length < 8 || digits.length > 15) return false;
  const groups = s.split(/[ .\-()]+/).filter((g) => g.length > 0).length;
  const international = s.startsWith('+') || s.startsWith('00');
  const marked = international || s.startsWith('(') || (s.startsWith('0') && groups >= 2);
  const nanp = groups >= 3 && digits.length >= 10 && digits.length <= 11;
  return (marked && digits.length >= 9) || nanp;
}

export function findPii(kind: PiiKind, text: string): Span[] {
  switch (kind) {
    case 'email':
      return findEmails(text);
    case 'phone':
      return findPhones(text);
    case 'card':
      return findCards(text);
    case 'iban':
      return findIbans(text);
  }
}
