/**
 * Server-sent events: an incremental parser for upstream streams and a formatter for ours.
 * Follows the WHATWG event-stream rules (CR, LF and CRLF line ends, comments, multi-line data,
 * one optional space after the colon, a leading BOM) because upstreams and SDKs differ in framing.
 */

export interface SseEvent {
  /** The `event:` field; absent means the default `message` type. */
  event?: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
  /** The `id:` field given in this event's block, if any. */
  id?: string;
}

/**
 * The most text one event may hold, its unfinished line included. A provider that never ends a
 * line (or an event), perhaps through a compressed body that decodes a thousand times larger,
 * would otherwise grow the buffer until the process runs out of memory (in local mode, the
 * gateway every tenant shares). Bedrock's event-stream messages are capped at 1 MiB.
 */
export const MAX_SSE_EVENT_CHARS = 8 * 1024 * 1024;

/** An upstream event past MAX_SSE_EVENT_CHARS: the stream is broken, not the provider's reported error. */
export class SseLimitError extends Error {
  constructor() {
    super(`an upstream event is longer than ${MAX_SSE_EVENT_CHARS} characters`);
    this.name = 'SseLimitError';
  }
}

export class SseParser {
  private buffer = '';
  /** Characters of the pending event's data lines. */
  private dataChars = 0;
  /** The previous chunk ended on CR: a LF at the start of the next chunk belongs to that line end. */
  private skipLeadingLf = false;
  private atStreamStart = true;
  private readonly decoder = new TextDecoder('utf-8');
  private dataLines: string[] = [];
  private hasData = false;
  private eventType: string | undefined;
  private eventId: string | undefined;

  /**
   * Feeds the next piece of the stream; returns the events it completed. Bytes are decoded as a
   * UTF-8 stream, so a multi-byte character split across network chunks is not corrupted.
   */
  push(chunk: string | Uint8Array): SseEvent[] {
    let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    if (text.length === 0) return [];
    if (this.skipLeadingLf) {
      this.skipLeadingLf = false;
      if (text.startsWith('\n')) text = text.slice(1);
    }
    // What is buffered holds no line end (drainLines left only an unfinished line): scan the new text only.
    const from = this.buffer.length;
    this.buffer += text;
    if (this.atStreamStart && this.buffer.length > 0) {
      this.atStreamStart = false;
      if (this.buffer.startsWith('\uFEFF')) this.buffer = this.buffer.slice(1);
    }
    const events = this.drainLines(from);
    if (this.buffer.length + this.dataChars > MAX_SSE_EVENT_CHARS) throw new SseLimitError();
    return events;
  }

  /**
   * Ends the stream. Per the spec an event never closed by a blank line is dropped; we keep one
   * whose last line was terminated (only the blank line is missing), but never dispatch a final
   * unterminated line, which may be a truncated payload.
   */
  end(): SseEvent[] {
    const tail = this.decoder.decode();
    const events = tail ? this.push(tail) : [];
    this.buffer = '';
    const last = this.dispatch();
    if (last) events.push(last);
    return events;
  }

  private drainLines(from: number): SseEvent[] {
    const events: SseEvent[] = [];
    let start = 0;
    const buf = this.buffer;
    for (let i = from; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = buf.slice(start, i);
      if (c === 13) {
        if (i + 1 < buf.length) {
          if (buf.charCodeAt(i + 1) === 10) i++;
        } else {
          this.skipLeadingLf = true;
        }
      }
      start = i + 1;
      const ev = this.processLine(line);
      if (ev) events.push(ev);
    }
    this.buffer = buf.slice(start);
    return events;
  }

  private processLine(line: string): SseEvent | undefined {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        this.dataLines.push(value);
        this.hasData = true;
        this.dataChars += value.length + 1;
        if (this.dataChars > MAX_SSE_EVENT_CHARS) throw new SseLimitError();
        break;
      case 'event':
        this.eventType = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.eventId = value;
        break;
      default:
        // `retry` and unknown fields are ignored, as the spec says.
        break;
    }
    return undefined;
  }

  private dispatch(): SseEvent | undefined {
    const ev: SseEvent | undefined = this.hasData ? { data: this.dataLines.join('\n') } : undefined;
    if (ev && this.eventType !== undefined && this.eventType !== '') ev.event = this.eventType;
    if (ev && this.eventId !== undefined) ev.id = this.eventId;
    this.dataLines = [];
    this.dataChars = 0;
    this.hasData = false;
    this.eventType = undefined;
    this.eventId = undefined;
    return ev;
  }
}

/** Serializes one event; multi-line data becomes several `data:` lines so it round-trips. */
export function formatSse(event: SseEvent): string {
  let out = '';
  if (event.event !== undefined) out += `event: ${stripLineBreaks(event.event)}\n`;
  if (event.id !== undefined) out += `id: ${stripLineBreaks(event.id)}\n`;
  for (const line of event.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return out + '\n';
}

/** A line break inside `event:` or `id:` would inject fields; such values are never legitimate. */
function stripLineBreaks(value: string): string {
  return value.replace(/[\r\n]/g, '');
}

/** The terminator OpenAI-format streams end with. */
export const SSE_DONE = 'data: [DONE]\n\n';
