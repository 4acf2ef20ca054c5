/**
 * A regular expression (PCRE subset that AWS WAF accepts) matching exactly the decimal integers
 * greater than `limit`, leading zeros allowed. WAF cannot compare numbers, so the request-size
 * rule compares the Content-Length header's digits instead.
 */
export function greaterThanRegex(limit: number): string {
  if (!Number.isSafeInteger(limit) || limit < 0) throw new Error(`greaterThanRegex needs a non-negative integer, got ${limit}`);
  const digits = String(limit);
  const n = digits.length;
  // Any number with more digits (no leading zero) is larger.
  const alternatives = [`[1-9]\\d{${n},}`];
  // Same length: equal up to position i, larger digit at i, anything after.
  for (let i = 0; i < n; i++) {
    const d = Number(digits[i]);
    if (d === 9) continue;
    const rest = n - i - 1;
    alternatives.push(`${digits.slice(0, i)}[${d + 1}-9]${rest > 0 ? `\\d{${rest}}` : ''}`);
  }
  return `^0*(?:${alternatives.join('|')})$`;
}
