/**
 * Chat Completions stream chunks as Responses API semantic events: response.created and
 * response.in_progress first; then, per output item, output_item.added, content_part.added,
 * output_text.delta... output_text.done, content_part.done, output_item.done (function calls:
 * output_item.added, function_call_arguments.delta/done, output_item.done); last
 * response.completed (or response.incomplete), carrying the whole Response with its usage.
 */
import type {
  ResponseFunctionToolCall,
  ResponseOutputItem,
  ResponseOutputMessage,
  ResponseOutputText,
  ResponseStreamEvent,
} from 'openai/resources/responses/responses';
import { finishToStatus, newItemId, responseShell, toResponsesUsage, type ResponsesEcho, type ResponsesObject } from './chat-to-responses';
import { isRecord } from './guards';
import type { OpenAiChunk, OpenAiFinishReason } from './openai-types';
import { usageFromOpenAi, type TokenUsage } from './usage';

interface OpenText {
  kind: 'text';
  outputIndex: number;
  item: ResponseOutputMessage;
  text: string;
}
interface OpenCall {
  kind: 'call';
  outputIndex: number;
  item: ResponseFunctionToolCall & { id: string };
}

export class ChatToResponsesStream {
  private seq = 0;
  private started = false;
  private ended = false;
  private finish: OpenAiFinishReason | null = null;
  private tokenUsage: TokenUsage | undefined;
  private readonly output: ResponseOutputItem[] = [];
  private text: OpenText | undefined;
  /** Chat tool_calls index → the open function_call item. */
  private readonly calls = new Map<number, OpenCall>();

  constructor(private readonly echo: ResponsesEcho) {}

  /** The events for one upstream chunk. */
  push(chunk: OpenAiChunk): ResponseStreamEvent[] {
    const out = this.start();
    if (this.ended) return out;
    if (isRecord(chunk.usage)) this.tokenUsage = usageFromOpenAi(chunk.usage);
    for (const choice of Array.isArray(chunk.choices) ? chunk.choices : []) {
      if (!isRecord(choice) || (choice.index ?? 0) !== 0) continue;
      const delta = isRecord(choice.delta) ? choice.delta : {};
      if (typeof delta.content === 'string' && delta.content !== '') this.textDelta(delta.content, out);
      for (const tc of Array.isArray(delta.tool_calls) ? delta.tool_calls : []) if (isRecord(tc)) this.callDelta(tc, out);
      if (choice.finish_reason) this.finish = choice.finish_reason;
    }
    return out;
  }

  /** Closes every open item and ends with response.completed / response.incomplete. */
  finishEvents(): ResponseStreamEvent[] {
    const out = this.start();
    if (this.ended) return out;
    this.closeText(out);
    for (const call of [...this.calls.values()]) this.closeCall(call, out);
    this.calls.clear();
    this.ended = true;
    const { status, incomplete_details } = finishToStatus(this.finish);
    const response: ResponsesObject = {
      ...responseShell(this.echo, status),
      incomplete_details,
      output: this.output,
      ...(this.tokenUsage ? { usage: toResponsesUsage(this.tokenUsage) } : {}),
    };
    out.push(
      status === 'completed'
        ? { type: 'response.completed', sequence_number: this.seq++, response: response as never }
        : { type: 'response.incomplete', sequence_number: this.seq++, response: response as never },
    );
    return out;
  }

  /** A response.failed event ending a broken stream. */
  failedEvent(message: string): ResponseStreamEvent[] {
    const out = this.start();
    this.ended = true;
    const response: ResponsesObject = {
      ...responseShell(this.echo, 'failed'),
      output: this.output,
      error: { code: 'server_error', message },
      ...(this.tokenUsage ? { usage: toResponsesUsage(this.tokenUsage) } : {}),
    };
    out.push({ type: 'response.failed', sequence_number: this.seq++, response: response as never });
    return out;
  }

  usage(): TokenUsage | undefined {
    return this.tokenUsage;
  }

  private start(): ResponseStreamEvent[] {
    if (this.started) return [];
    this.started = true;
    const response = responseShell(this.echo, 'in_progress') as never;
    return [
      { type: 'response.created', sequence_number: this.seq++, response },
      { type: 'response.in_progress', sequence_number: this.seq++, response },
    ];
  }

  private textDelta(delta: string, out: ResponseStreamEvent[]): void {
    if (!this.text) {
      const item: ResponseOutputMessage = { id: newItemId('msg'), type: 'message', role: 'assistant', status: 'in_progress', content: [] };
      this.text = { kind: 'text', outputIndex: this.output.length, item, text: '' };
      this.output.push(item);
      out.push({ type: 'response.output_item.added', sequence_number: this.seq++, output_index: this.text.outputIndex, item: { ...item, content: [] } });
      out.push({
        type: 'response.content_part.added',
        sequence_number: this.seq++,
        output_index: this.text.outputIndex,
        item_id: item.id,
        content_index: 0,
        part: { type: 'output_text', text: '', annotations: [], logprobs: [] },
      });
    }
    this.text.text += delta;
    out.push({
      type: 'response.output_text.delta',
      sequence_number: this.seq++,
      output_index: this.text.outputIndex,
      item_id: this.text.item.id,
      content_index: 0,
      delta,
      logprobs: [],
    });
  }

  private closeText(out: ResponseStreamEvent[]): void {
    const open = this.text;
    if (!open) return;
    this.text = undefined;
    const part: ResponseOutputText = { type: 'output_text', text: open.text, annotations: [], logprobs: [] };
    const base = { output_index: open.outputIndex, item_id: open.item.id, content_index: 0 };
    out.push({ type: 'response.output_text.done', sequence_number: this.seq++, ...base, text: open.text, logprobs: [] });
    out.push({ type: 'response.content_part.done', sequence_number: this.seq++, ...base, part });
    open.item.content = [part];
    open.item.status = this.finish === 'length' || this.finish === 'content_filter' ? 'incomplete' : 'completed';
    out.push({ type: 'response.output_item.done', sequence_number: this.seq++, output_index: open.outputIndex, item: { ...open.item } });
  }

  private callDelta(tc: Record<string, unknown>, out: ResponseStreamEvent[]): void {
    const index = typeof tc.index === 'number' ? tc.index : 0;
    const fn = isRecord(tc.function) ? tc.function : {};
    let call = this.calls.get(index);
    if (!call) {
      // A function call follows the text it comes after: that text item is complete.
      this.closeText(out);
      const item = {
        id: newItemId('fc'),
        type: 'function_call' as const,
        status: 'in_progress' as const,
        call_id: typeof tc.id === 'string' ? tc.id : newItemId('fc'),
        name: typeof fn.name === 'string' ? fn.name : '',
        arguments: '',
      };
      call = { kind: 'call', outputIndex: this.output.length, item };
      this.calls.set(index, call);
      this.output.push(item);
      out.push({ type: 'response.output_item.added', sequence_number: this.seq++, output_index: call.outputIndex, item: { ...item } });
    } else if (typeof fn.name === 'string' && call.item.name === '') {
      call.item.name = fn.name;
    }
    if (typeof fn.arguments === 'string' && fn.arguments !== '') {
      call.item.arguments += fn.arguments;
      out.push({
        type: 'response.function_call_arguments.delta',
        sequence_number: this.seq++,
        output_index: call.outputIndex,
        item_id: call.item.id,
        delta: fn.arguments,
      });
    }
  }

  private closeCall(call: OpenCall, out: ResponseStreamEvent[]): void {
    out.push({
      type: 'response.function_call_arguments.done',
      sequence_number: this.seq++,
      output_index: call.outputIndex,
      item_id: call.item.id,
      name: call.item.name,
      arguments: call.item.arguments,
    });
    call.item.status = 'completed';
    out.push({ type: 'response.output_item.done', sequence_number: this.seq++, output_index: call.outputIndex, item: { ...call.item } });
  }
}
