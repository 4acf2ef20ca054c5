/**
 * A Responses API stream from an OpenAI-kind target, forwarded unchanged: only observed for its
 * usage (on response.completed / response.incomplete / response.failed) and for whether it ended.
 */
import type { SseEvent } from '../sse';
import { UpstreamProtocolError, UpstreamStreamError } from './errors';
import { isRecord } from './guards';
import { usageFromResponses } from './chat-to-responses';
import type { TokenUsage } from './usage';

const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);

export class ResponsesPassthroughStream {
  private ended = false;
  private tokenUsage: TokenUsage | undefined;
  private responseId: string | undefined;

  /** Observes one upstream event. Throws UpstreamStreamError on an `error` event. */
  observe(ev: SseEvent): void {
    if (ev.data.trim() === '' || ev.data.trim() === '[DONE]') return;
    let payload: unknown;
    try {
      payload = JSON.parse(ev.data);
    } catch {
      throw new UpstreamProtocolError('upstream stream event is not valid JSON');
    }
    if (!isRecord(payload)) throw new UpstreamProtocolError('upstream stream event is not a JSON object');
    const type = typeof payload.type === 'string' ? payload.type : ev.event;
    if (type === 'error') {
      const code = typeof payload.code === 'string' ? payload.code : 'server_error';
      throw new UpstreamStreamError(typeof payload.message === 'string' ? payload.message : 'upstream stream error', code);
    }
    const response = isRecord(payload.response) ? payload.response : undefined;
    if (response && typeof response.id === 'string') this.responseId ??= response.id;
    if (type !== undefined && TERMINAL.has(type)) {
      this.ended = true;
      this.tokenUsage = usageFromResponses(response?.usage) ?? this.tokenUsage;
    }
  }

  /** True once a terminal event went by. */
  get complete(): boolean {
    return this.ended;
  }

  usage(): TokenUsage | undefined {
    return this.tokenUsage;
  }

  /** The upstream response id (from response.created), for a failure event that names it. */
  get id(): string | undefined {
    return this.responseId;
  }
}
