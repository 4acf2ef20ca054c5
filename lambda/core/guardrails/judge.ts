/**
 * The guardrail stage: judges a request's text against the effective guardrails before any key
 * is opened. It returns a verdict with rule names only; the matched text never leaves this file.
 *
 * Splitting: every text segment (a message's content string, one content part or block, a tool
 * argument) is scanned on its own, and so is the concatenation of all segments in reading order
 * with nothing between them. So a card number split over two content parts, or an e-mail
 * address split over two messages, is found as it would read when joined; a piece with other
 * text between the halves is not (see README "Guardrails").
 */
import { findPii, PiiKind, Span } from './detectors';
import { normalizeText, NormalizedText } from './normalize';
import type { EffectiveGuardrails } from './policy';
import { requestSegments, Segment, withReplacedStrings } from './segments';
import { estimateInputTokens } from './token-estimate';
import type { ApiRoute } from '../router/client-request';

export type GuardrailAction = 'passed' | 'redacted' | 'refused';

/** What goes on the usage record and into metrics: never any matched text. */
export interface GuardrailOutcome {
  readonly action: GuardrailAction;
  /** Rules that matched: `personal_data:<kind>`, `blocked_term`, `max_input_tokens`. */
  readonly rules: readonly string[];
}

export interface GuardrailVerdict extends GuardrailOutcome {
  /** The body with personal data replaced, when action is `redacted`. */
  readonly body?: Record<string, unknown>;
  readonly estimatedInputTokens: number;
}

export const redactionMarker = (kind: PiiKind): string => `[REDACTED:${kind}]`;

interface Scanned {
  readonly segments: readonly Segment[];
  readonly norm: readonly NormalizedText[];
  /** Start of each segment's normalized text in the concatenation. */
  readonly starts: readonly number[];
  readonly joined: string;
}

function scan(segments: readonly Segment[]): Scanned {
  const norm = segments.map((s) => normalizeText(s.text));
  const starts: number[] = [];
  let at = 0;
  for (const n of norm) {
    starts.push(at);
    at += n.text.length;
  }
  return { segments, norm, starts, joined: norm.map((n) => n.text).join('') };
}

const overlaps = (a: Span, b: Span) => a.start < b.end && b.start < a.end;

/** Spans of one kind in the concatenation: found per segment, or across segment seams. */
function piiSpans(kind: PiiKind, s: Scanned): Span[] {
  const own: Span[] = [];
  s.norm.forEach((n, k) => {
    for (const sp of findPii(kind, n.text)) own.push({ start: s.starts[k] + sp.start, end: s.starts[k] + sp.end });
  });
  // A match in the concatenation counts where no segment's own match explains it (else 'fine' +
  // 'bob@example.com' would redact 'finebob@example.com').
  const across = findPii(kind, s.joined).filter((c) => !own.some((o) => overlaps(o, c)));
  return [...own, ...across];
}

const WORD = /[\p{L}\p{N}_]/u;

/** Blocked terms as whole words or phrases; a seam between segments counts as a word boundary too. */
function hasBlockedTerm(terms: readonly string[], s: Scanned): boolean {
  const seams = new Set(s.starts);
  const text = s.joined;
  const boundaryBefore = (i: number, first: string) => !WORD.test(first) || i === 0 || seams.has(i) || !WORD.test(text[i - 1]);
  const boundaryAfter = (i: number, last: string) => !WORD.test(last) || i >= text.length || seams.has(i) || !WORD.test(text[i]);
  for (const term of terms) {
    for (let i = text.indexOf(term); i >= 0; i = text.indexOf(term, i + 1)) {
      if (boundaryBefore(i, term[0]) && boundaryAfter(i + term.length, term[term.length - 1])) return true;
    }
  }
  return false;
}

/** Replaces each span's original characters, segment by segment, with the kind's marker. */
function redact(body: Record<string, unknown>, s: Scanned, spans: ReadonlyArray<Span & { kind: PiiKind }>): Record<string, unknown> {
  const perSegment = new Map<number, Array<{ from: number; to: number; kind: PiiKind }>>();
  for (const sp of spans) {
    s.norm.forEach((n, k) => {
      const a = Math.max(sp.start, s.starts[k]) - s.starts[k];
      const b = Math.min(sp.end, s.starts[k] + n.text.length) - s.starts[k];
      if (a >= b) return;
      const list = perSegment.get(k) ?? [];
      list.push({ from: n.from[a], to: n.to[b - 1], kind: sp.kind });
      perSegment.set(k, list);
    });
  }
  const replacements = new Map<Segment, string>();
  for (const [k, list] of perSegment) {
    list.sort((x, y) => x.from - y.from);
    const merged: Array<{ from: number; to: number; kind: PiiKind }> = [];
    for (const r of list) {
      const last = merged[merged.length - 1];
      if (last && r.from <= last.to) last.to = Math.max(last.to, r.to);
      else merged.push({ ...r });
    }
    let text = s.segments[k].text;
    for (const r of merged.reverse()) text = text.slice(0, r.from) + redactionMarker(r.kind) + text.slice(r.to);
    replacements.set(s.segments[k], text);
  }
  return withReplacedStrings(body, replacements);
}

// Cards and IBANs first: their digits must not be reported (or redacted) as phone numbers.
const KIND_ORDER: readonly PiiKind[] = ['card', 'iban', 'email', 'phone'];

export function judgeRequest(route: Exclude<ApiRoute, 'models'>, body: Record<string, unknown>, g: EffectiveGuardrails): GuardrailVerdict {
  const segments = requestSegments(route, body);
  const estimatedInputTokens = estimateInputTokens(segments);
  const refused: string[] = [];
  const redacted: string[] = [];
  if (g.maxInputTokens !== undefined && estimatedInputTokens > g.maxInputTokens) refused.push('max_input_tokens');

  const s = scan(segments);
  if (g.blockedTerms.length > 0 && hasBlockedTerm(g.blockedTerms, s)) refused.push('blocked_term');

  const found: Array<Span & { kind: PiiKind }> = [];
  for (const kind of KIND_ORDER) {
    const action = g.personalData.get(kind);
    if (!action) continue;
    const spans = piiSpans(kind, s).filter((sp) => !found.some((f) => (f.kind === 'card' || f.kind === 'iban') && overlaps(f, sp)));
    if (spans.length === 0) continue;
    const rule = `personal_data:${kind}`;
    if (action === 'refuse') refused.push(rule);
    else {
      redacted.push(rule);
      for (const sp of spans) found.push({ ...sp, kind });
    }
  }
  if (refused.length > 0) return { action: 'refused', rules: [...refused, ...redacted], estimatedInputTokens };
  if (redacted.length > 0) return { action: 'redacted', rules: redacted, body: redact(body, s, found), estimatedInputTokens };
  return { action: 'passed', rules: [], estimatedInputTokens };
}
