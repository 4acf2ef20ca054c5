import { formatSse, MAX_SSE_EVENT_CHARS, SSE_DONE, SseLimitError, SseParser, type SseEvent } from '../../lambda/core/sse';

function parseAll(chunks: Array<string | Uint8Array>): SseEvent[] {
  const p = new SseParser();
  const out: SseEvent[] = [];
  for (const c of chunks) out.push(...p.push(c));
  out.push(...p.end());
  return out;
}

const SAMPLE =
  ': keep-alive comment\r\n' +
  'event: message_start\r\n' +
  'data: {"type":"message_start","text":"héllo ✓ 𝄞"}\r\n' +
  '\r\n' +
  'event: ping\n' +
  'data: {"type":"ping"}\n' +
  '\n' +
  'id: 42\r' +
  'data: line one\r' +
  'data: line two\r' +
  'data:no-space\r' +
  '\r' +
  'data: [DONE]\n\n';

const EXPECTED: SseEvent[] = [
  { event: 'message_start', data: '{"type":"message_start","text":"héllo ✓ 𝄞"}' },
  { event: 'ping', data: '{"type":"ping"}' },
  { id: '42', data: 'line one\nline two\nno-space' },
  { data: '[DONE]' },
];

describe('SseParser', () => {
  it('parses a whole stream with CRLF, CR, LF, comments and multi-line data', () => {
    expect(parseAll([SAMPLE])).toEqual(EXPECTED);
  });

  it('gives the same events whatever string boundary splits the stream in two', () => {
    for (let i = 0; i <= SAMPLE.length; i++) {
      expect(parseAll([SAMPLE.slice(0, i), SAMPLE.slice(i)])).toEqual(EXPECTED);
    }
  });

  it('gives the same events split at every pair of boundaries (three pieces)', () => {
    for (let i = 0; i <= SAMPLE.length; i += 3) {
      for (let j = i; j <= SAMPLE.length; j += 5) {
        expect(parseAll([SAMPLE.slice(0, i), SAMPLE.slice(i, j), SAMPLE.slice(j)])).toEqual(EXPECTED);
      }
    }
  });

  it('decodes bytes split at every byte boundary, multi-byte characters included', () => {
    const bytes = new TextEncoder().encode(SAMPLE);
    for (let i = 0; i <= bytes.length; i++) {
      expect(parseAll([bytes.subarray(0, i), bytes.subarray(i)])).toEqual(EXPECTED);
    }
  });

  it('handles one byte at a time', () => {
    const bytes = new TextEncoder().encode(SAMPLE);
    expect(parseAll(Array.from(bytes, (b) => Uint8Array.of(b)))).toEqual(EXPECTED);
    expect(parseAll(Array.from(SAMPLE))).toEqual(EXPECTED);
  });

  it('does not split a CRLF pair across chunks into two line ends', () => {
    expect(parseAll(['data: a\r', '\n', '\r', '\n'])).toEqual([{ data: 'a' }]);
  });

  it('strips a leading BOM, a single space after the colon only, and ignores unknown fields', () => {
    expect(parseAll(['\uFEFFdata:  two spaces\nretry: 10\nfoo: bar\n\n'])).toEqual([{ data: ' two spaces' }]);
  });

  it('treats a field name without colon as empty value and skips events without data', () => {
    expect(parseAll(['data\n\nevent: lonely\n\ndata: x\n\n'])).toEqual([{ data: '' }, { data: 'x' }]);
  });

  it('does not carry event type or id over to the next event', () => {
    expect(parseAll(['event: a\nid: 1\ndata: 1\n\ndata: 2\n\n'])).toEqual([
      { event: 'a', id: '1', data: '1' },
      { data: '2' },
    ]);
  });

  it('end() keeps an event missing only its blank line, drops an unterminated line', () => {
    expect(parseAll(['data: complete\n'])).toEqual([{ data: 'complete' }]);
    expect(parseAll(['data: {"trunc'])).toEqual([]);
    expect(parseAll(['data: a\n\ndata: {"trunc'])).toEqual([{ data: 'a' }]);
  });

  it('returns events as soon as their blank line arrives', () => {
    const p = new SseParser();
    expect(p.push('data: 1\n')).toEqual([]);
    expect(p.push('\ndata: 2')).toEqual([{ data: '1' }]);
    expect(p.push('\n\n')).toEqual([{ data: '2' }]);
    expect(p.end()).toEqual([]);
  });
});

describe('formatSse', () => {
  it('writes event, id and data lines and a blank line', () => {
    expect(formatSse({ event: 'ping', data: '{}' })).toBe('event: ping\ndata: {}\n\n');
    expect(formatSse({ data: 'x', id: '7' })).toBe('id: 7\ndata: x\n\n');
    expect(SSE_DONE).toBe(formatSse({ data: '[DONE]' }));
  });

  it('round-trips through the parser, multi-line data included', () => {
    const events: SseEvent[] = [
      { event: 'a', data: 'one\ntwo\n\nfour' },
      { data: '' },
      { id: 'x', data: 'crlf\r\nline' },
    ];
    const text = events.map(formatSse).join('');
    expect(parseAll([text])).toEqual([events[0], events[1], { id: 'x', data: 'crlf\nline' }]);
  });

  it('cannot be made to inject fields through event or id', () => {
    expect(parseAll([formatSse({ event: 'a\ndata: evil', data: 'ok' })])).toEqual([{ event: 'adata: evil', data: 'ok' }]);
  });
});

describe('bounds (a hostile or broken upstream)', () => {
  const chunk = 'a'.repeat(64 * 1024);

  test('a line that never ends throws SseLimitError once past the bound, instead of buffering without end', () => {
    const p = new SseParser();
    let pushed = 0;
    expect(() => {
      for (;;) {
        p.push(pushed === 0 ? `data: ${chunk}` : chunk);
        pushed += chunk.length;
        if (pushed > 4 * MAX_SSE_EVENT_CHARS) break;
      }
    }).toThrow(SseLimitError);
    expect(pushed).toBeLessThanOrEqual(MAX_SSE_EVENT_CHARS + chunk.length);
  });

  test('an event of many data lines never closed by a blank line throws once past the bound', () => {
    const p = new SseParser();
    let pushed = 0;
    expect(() => {
      for (;;) {
        p.push(`data: ${chunk}\n`);
        pushed += chunk.length;
        if (pushed > 4 * MAX_SSE_EVENT_CHARS) break;
      }
    }).toThrow(SseLimitError);
    expect(pushed).toBeLessThanOrEqual(MAX_SSE_EVENT_CHARS + chunk.length);
  });

  test('many events, each well under the bound, pass however long the stream', () => {
    const p = new SseParser();
    let events = 0;
    const event = `data: ${'b'.repeat(1024 * 1024)}\n\n`;
    for (let i = 0; i < 24; i++) events += p.push(event.slice(0, 1000)).length + p.push(event.slice(1000)).length;
    expect(events).toBe(24);
  });

  test('a line end split across pushes after a long unfinished line is still found (only new text is scanned)', () => {
    expect(parseAll(['data: ', 'x'.repeat(100_000), 'y\r', '\n', '\r\n', 'data: z\n\n'])).toEqual([{ data: `${'x'.repeat(100_000)}y` }, { data: 'z' }]);
  });
});
