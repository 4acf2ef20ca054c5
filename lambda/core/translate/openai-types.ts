/**
 * OpenAI Chat Completions wire types: only the fields the gateway reads or writes. Bodies come from
 * JSON and may carry extra fields; translation ignores what it does not know, and same-provider
 * passthrough forwards the original body untouched.
 */

export interface OpenAiTextPart {
  type: 'text';
  text: string;
}

export interface OpenAiImagePart {
  type: 'image_url';
  image_url: { url: string; detail?: 'auto' | 'low' | 'high' };
}

export interface OpenAiAudioPart {
  type: 'input_audio';
  input_audio: { data: string; format: string };
}

export interface OpenAiFilePart {
  type: 'file';
  file: { file_data?: string; file_id?: string; filename?: string };
}

export interface OpenAiRefusalPart {
  type: 'refusal';
  refusal: string;
}

export type OpenAiUserContentPart = OpenAiTextPart | OpenAiImagePart | OpenAiAudioPart | OpenAiFilePart;

export interface OpenAiSystemMessage {
  /** `developer` is the newer name for `system` on reasoning models; both mean instructions. */
  role: 'system' | 'developer';
  content: string | OpenAiTextPart[];
  name?: string;
}

export interface OpenAiUserMessage {
  role: 'user';
  content: string | OpenAiUserContentPart[];
  name?: string;
}

export interface OpenAiToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface OpenAiAssistantMessage {
  role: 'assistant';
  content?: string | Array<OpenAiTextPart | OpenAiRefusalPart> | null;
  refusal?: string | null;
  tool_calls?: OpenAiToolCall[];
  name?: string;
}

export interface OpenAiToolMessage {
  role: 'tool';
  content: string | OpenAiTextPart[];
  tool_call_id: string;
}

export type OpenAiMessage = OpenAiSystemMessage | OpenAiUserMessage | OpenAiAssistantMessage | OpenAiToolMessage;

export interface OpenAiFunctionTool {
  type: 'function';
  function: {
    name: string;
    description?: string;
    parameters?: Record<string, unknown>;
    strict?: boolean | null;
  };
}

export type OpenAiToolChoice =
  | 'none'
  | 'auto'
  | 'required'
  | { type: 'function'; function: { name: string } };

export interface OpenAiChatRequest {
  model: string;
  messages: OpenAiMessage[];
  tools?: OpenAiFunctionTool[];
  tool_choice?: OpenAiToolChoice;
  parallel_tool_calls?: boolean;
  /** Deprecated by OpenAI and rejected by reasoning models; Mistral still uses it. */
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  stop?: string | string[] | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  n?: number | null;
  user?: string;
  response_format?: {
    type: 'text' | 'json_object' | 'json_schema';
    json_schema?: { name: string; description?: string; schema?: Record<string, unknown>; strict?: boolean | null };
  };
}

export interface OpenAiUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number } | null;
  completion_tokens_details?: { reasoning_tokens?: number } | null;
}

export type OpenAiFinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'function_call';

export interface OpenAiResponseMessage {
  role: 'assistant';
  content: string | null;
  refusal?: string | null;
  tool_calls?: OpenAiToolCall[];
}

export interface OpenAiChoice {
  index: number;
  message: OpenAiResponseMessage;
  finish_reason: OpenAiFinishReason | null;
  logprobs: unknown;
}

export interface OpenAiChatResponse {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: OpenAiChoice[];
  usage?: OpenAiUsage;
  system_fingerprint?: string | null;
}

export interface OpenAiToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function?: { name?: string; arguments?: string };
}

export interface OpenAiDelta {
  role?: 'assistant';
  content?: string | null;
  refusal?: string | null;
  tool_calls?: OpenAiToolCallDelta[];
}

export interface OpenAiChunkChoice {
  index: number;
  delta: OpenAiDelta;
  finish_reason: OpenAiFinishReason | null;
  logprobs?: unknown;
}

export interface OpenAiChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  /** Empty on the final usage chunk sent when `stream_options.include_usage` is set. */
  choices: OpenAiChunkChoice[];
  /** `null` on every chunk but the last when usage was requested. */
  usage?: OpenAiUsage | null;
  system_fingerprint?: string | null;
}

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}
