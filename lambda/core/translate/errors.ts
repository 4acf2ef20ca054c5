/**
 * Errors raised while translating between the OpenAI and Anthropic wire formats.
 * Each carries the HTTP status the handler should answer with, so the handler maps them without
 * knowing which translation step failed.
 */

/** The client's request cannot be expressed for the target provider (maps to HTTP 400). */
export class TranslationError extends Error {
  readonly status = 400;
  readonly type = 'invalid_request_error';
  /** Dotted path of the offending field, e.g. `messages.2.tool_calls.0.function.arguments`. */
  readonly param: string | undefined;

  constructor(message: string, param?: string) {
    super(param ? `${param}: ${message}` : message);
    this.name = 'TranslationError';
    this.param = param;
  }
}

/**
 * The provider answered with something we cannot translate (malformed JSON, missing fields,
 * invalid tool arguments). Not the client's fault: maps to HTTP 502.
 */
export class UpstreamProtocolError extends Error {
  readonly status = 502;
  readonly type = 'api_error';

  constructor(message: string) {
    super(message);
    this.name = 'UpstreamProtocolError';
  }
}

/**
 * The provider sent an error event in the middle of a stream (e.g. Anthropic `overloaded_error`,
 * or an OpenAI `{"error":...}` chunk). The caller ends the client stream with an error event.
 */
export class UpstreamStreamError extends Error {
  /** The provider's error type, e.g. `overloaded_error`, `server_error`. */
  readonly errorType: string;

  constructor(message: string, errorType: string) {
    super(message);
    this.name = 'UpstreamStreamError';
    this.errorType = errorType;
  }
}
