/**
 * The text of a request that guardrails judge, as segments in reading order: every string under
 * `messages` (content strings, text parts and blocks, tool-call arguments, tool results) and
 * Anthropic's `system`, documents with a text or content source), chat `prediction.content`, or
 * an embeddings request's `input`, or a Responses request's `instructions`, `input` (string or
 * items) and `prompt.variables`. Structural fields (role, type, ids, names, media types) and
 * binary payloads (images, audio, files, base64/url/file sources, thinking signatures) are not
 * text and are skipped. Tool definitions (`tools`) are not scanned.
 */
import type { ApiRoute } from '../router/client-request';

export interface Segment {
  /** Index of the message (system = -1; embeddings: index of the input string). */
  readonly message: number;
  /** Where the string sits in the body, for writing a redacted version back. */
  readonly path: readonly (string | number)[];
  readonly text: string;
}

const STRUCTURAL_KEYS = new Set(['role', 'type', 'id', 'tool_call_id', 'tool_use_id', 'call_id', 'name', 'media_type', 'cache_control', 'signature', 'data', 'detail', 'format']);
// file_data: a Responses input_file's base64; encrypted_content: a Responses reasoning item's opaque blob.
const BINARY_KEYS = new Set(['image_url', 'input_audio', 'file', 'audio', 'file_data', 'encrypted_content']);

/** Values whose every string is text, whatever its key: tool arguments are the caller's data. */
const FREE_FORM_KEYS = new Set(['input', 'arguments']);

function walk(value: unknown, path: (string | number)[], message: number, out: Segment[], freeForm = false): void {
  if (typeof value === 'string') {
    if (value.length > 0) out.push({ message, path: [...path], text: value });
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((v, i) => walk(v, [...path, i], message, out, freeForm));
    return;
  }
  if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (!freeForm && (STRUCTURAL_KEYS.has(k) || BINARY_KEYS.has(k))) continue;
      if (!freeForm && k === 'source') {
        walkSource(v, [...path, k], message, out);
        continue;
      }
      walk(v, [...path, k], message, out, freeForm || FREE_FORM_KEYS.has(k));
    }
  }
}

/**
 * An Anthropic `source` (documents, images): `text` sources carry their text in `data` and
 * `content` sources a list of blocks, both sent to the model as text; base64, url and file
 * sources are binary or references and are skipped.
 */
function walkSource(source: unknown, path: (string | number)[], message: number, out: Segment[]): void {
  if (typeof source !== 'object' || source === null || Array.isArray(source)) return;
  const s = source as Record<string, unknown>;
  if (s.type === 'text' && typeof s.data === 'string') walk(s.data, [...path, 'data'], message, out);
  else if (s.type === 'content') walk(s.content, [...path, 'content'], message, out);
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function requestSegments(route: Exclude<ApiRoute, 'models'>, body: Record<string, unknown>): Segment[] {
  const out: Segment[] = [];
  if (route === 'embeddings') {
    const input = body.input;
    if (typeof input === 'string') walk(input, ['input'], 0, out);
    else if (Array.isArray(input)) input.forEach((v, i) => typeof v === 'string' && walk(v, ['input', i], i, out));
    return out;
  }
  if (route === 'responses') {
    // The Responses API: `instructions` (the system turn) and `input`, a string or a list of items
    // (messages, function calls and their outputs), each item one message.
    if (body.instructions !== undefined && body.instructions !== null) walk(body.instructions, ['instructions'], -1, out);
    const input = body.input;
    if (typeof input === 'string') walk(input, ['input'], 0, out);
    else if (Array.isArray(input)) input.forEach((item, i) => walk(item, ['input', i], i, out));
    // A stored prompt's variables are substituted into it as text (strings or input_text parts).
    if (isRecord(body.prompt) && isRecord(body.prompt.variables)) walk(body.prompt.variables, ['prompt', 'variables'], -1, out);
    return out;
  }
  if (route === 'messages' && body.system !== undefined) walk(body.system, ['system'], -1, out);
  const messages = Array.isArray(body.messages) ? body.messages : [];
  messages.forEach((m, i) => walk(m, ['messages', i], i, out));
  // Predicted output (chat): a string or text parts the provider reads alongside the messages.
  if (route === 'chat' && isRecord(body.prediction)) walk(body.prediction.content, ['prediction', 'content'], messages.length, out);
  return out;
}

/** Number of messages (or embedding inputs) the segments come from, system included. */
export function messageCount(segments: readonly Segment[]): number {
  return new Set(segments.map((s) => s.message)).size;
}

/** A deep copy of `body` with the strings at the given paths replaced. */
export function withReplacedStrings(body: Record<string, unknown>, replacements: ReadonlyMap<Segment, string>): Record<string, unknown> {
  const copy = structuredClone(body);
  for (const [segment, text] of replacements) {
    let node: unknown = copy;
    const path = segment.path;
    for (let i = 0; i < path.length - 1; i++) node = (node as Record<string | number, unknown>)[path[i]];
    (node as Record<string | number, unknown>)[path[path.length - 1]] = text;
  }
  return copy;
}
