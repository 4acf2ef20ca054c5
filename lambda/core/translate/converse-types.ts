/**
 * Amazon Bedrock Converse wire types (JSON, as the REST API sends them): only the fields the
 * gateway reads or writes. Binary fields (image bytes, redacted reasoning) travel as base64.
 */

export type ConverseImageFormat = 'png' | 'jpeg' | 'gif' | 'webp';

export type ConverseToolResultContent = { text: string } | { json: unknown } | { image: ConverseImage };

export interface ConverseImage {
  format: ConverseImageFormat;
  source: { bytes: string };
}

export type ConverseContentBlock =
  | { text: string }
  | { image: ConverseImage }
  | { toolUse: { toolUseId: string; name: string; input: unknown } }
  | { toolResult: { toolUseId: string; content: ConverseToolResultContent[]; status?: 'success' | 'error' } }
  | { reasoningContent: { reasoningText?: { text: string; signature?: string }; redactedContent?: string } };

export interface ConverseMessage {
  role: 'user' | 'assistant';
  content: ConverseContentBlock[];
}

export interface ConverseTool {
  toolSpec: { name: string; description?: string; inputSchema: { json: unknown } };
}

export type ConverseToolChoice = { auto: Record<string, never> } | { any: Record<string, never> } | { tool: { name: string } };

/** The body of `POST /model/{modelId}/converse` and `/converse-stream` (the model is in the path). */
export interface ConverseRequest {
  messages: ConverseMessage[];
  system?: Array<{ text: string }>;
  inferenceConfig?: { maxTokens?: number; temperature?: number; topP?: number; stopSequences?: string[] };
  toolConfig?: { tools: ConverseTool[]; toolChoice?: ConverseToolChoice };
  additionalModelRequestFields?: Record<string, unknown>;
}

export type ConverseStopReason =
  | 'end_turn'
  | 'tool_use'
  | 'max_tokens'
  | 'stop_sequence'
  | 'guardrail_intervened'
  | 'content_filtered'
  | 'model_context_window_exceeded'
  | (string & {});

export interface ConverseUsage {
  /** Uncached input, as Anthropic counts it: cache reads and writes have their own fields. */
  inputTokens: number;
  outputTokens: number;
  totalTokens?: number;
  cacheReadInputTokens?: number;
  cacheWriteInputTokens?: number;
}

export interface ConverseResponse {
  output: { message?: ConverseMessage };
  stopReason: ConverseStopReason;
  usage: ConverseUsage;
  metrics?: { latencyMs?: number };
}

/**
 * One ConverseStream event, keyed by its event type as the event stream's `:event-type` header
 * names it (the gateway's Bedrock adapter re-frames each as an SSE event of that name).
 */
export type ConverseStreamEventName = 'messageStart' | 'contentBlockStart' | 'contentBlockDelta' | 'contentBlockStop' | 'messageStop' | 'metadata';
