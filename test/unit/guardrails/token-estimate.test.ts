/**
 * The input-token estimate against real tokenizers (js-tiktoken, a devDependency: the router does
 * not bundle one). The README states the measured band; this test holds it.
 */
import { getEncoding } from 'js-tiktoken';
import { estimateTextTokens } from '../../../lambda/core/guardrails/token-estimate';

const SAMPLES: Record<string, string> = {
  english:
    'The quick brown fox jumps over the lazy dog. Governments and companies increasingly require that personal data stays within a region, and gateways in front of language models must respect that. ',
  german: 'Die Datenschutz-Grundverordnung verlangt, dass personenbezogene Daten nur für festgelegte Zwecke verarbeitet werden. Übermäßige Speicherung ist unzulässig. ',
  french: 'Le règlement général sur la protection des données impose que les données à caractère personnel soient traitées de manière licite, loyale et transparente. ',
  japanese: '個人データは、特定の明示された正当な目的のために収集され、その目的に適合しない方法で処理されてはならない。',
  russian: 'Персональные данные должны обрабатываться законно, добросовестно и прозрачно для субъекта данных. ',
  code: 'function luhn(d: string): boolean { let s = 0; for (let i = d.length - 1; i >= 0; i--) { let x = d.charCodeAt(i) - 48; if ((d.length - i) % 2 === 0) { x *= 2; if (x > 9) x -= 9; } s += x; } return s % 10 === 0; }\n',
  json: JSON.stringify({ users: Array.from({ length: 4 }, (_, i) => ({ id: i, name: `user${i}`, email: `u${i}@example.com`, score: i * 3.14 })) }),
  digits: '4111 1111 1111 1111, 5555-5555-5555-4444, +49 30 1234567, 2024-01-15 ',
};

describe.each(['o200k_base', 'cl100k_base'] as const)('estimate vs %s', (encoding) => {
  const enc = getEncoding(encoding);
  test.each(Object.keys(SAMPLES))('%s: within 0.75-1.5 times the real count', (name) => {
    const text = SAMPLES[name].repeat(5);
    const ratio = estimateTextTokens(text) / enc.encode(text).length;
    expect(ratio).toBeGreaterThanOrEqual(0.75);
    expect(ratio).toBeLessThanOrEqual(1.5);
  });
});
