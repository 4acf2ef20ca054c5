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

export class SseParser {
  private buffer = '';
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
    this.buffer += text;
    if (this.atStreamStart && this.buffer.length > 0) {
      this.atStreamStart = false;
      if (this.buffer.startsWith('\uFEFF')) this.buffer = this.buffer.slice(1);
    }
    return this.drainLines();
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

  private drainLines(): SseEvent[] {
    const events: SseEvent[] = [];
    let start = 0;
    const buf = this.buffer;
    for (let i = 0; i < buf.length; i++) {
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
