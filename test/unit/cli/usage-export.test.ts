import { csvCell, CSV_COLUMNS, toCsv } from '../../../cli/usage-export';

test('CSV cells: quoting, and no formula a spreadsheet would run', () => {
  expect(csvCell(undefined)).toBe('');
  expect(csvCell(0.000123)).toBe('0.000123');
  expect(csvCell('a,b')).toBe('"a,b"');
  expect(csvCell('say "hi"')).toBe('"say ""hi"""');
  for (const f of ['=HYPERLINK("http://x")', '+1', '-2+3', '@SUM(A1)', '\t=1']) expect(csvCell(f).replace(/^"/, '').startsWith("'")).toBe(true);
});

test('one header and one line per record, the chain flattened', () => {
  const csv = toCsv([
    { at: '2026-01-01T00:00:00.000Z', requestId: 'r1', model: '-evil', outcome: 'ok', fallbackChain: [{ provider: 'openai', model: 'm', outcome: 'status', status: 429, latencyMs: 3 }, { provider: 'anthropic', model: 'c', outcome: 'ok', latencyMs: 9 }] },
  ]);
  const [head, line, end] = csv.split('\r\n');
  expect(head).toBe(CSV_COLUMNS.join(','));
  expect(line.split(',')).toHaveLength(CSV_COLUMNS.length);
  expect(line).toContain(",'-evil,");
  expect(line.endsWith('openai/m:status:429:3ms > anthropic/c:ok:9ms')).toBe(true);
  expect(end).toBe('');
});
