/**
 * Anthropic Messages request → Amazon Bedrock Converse request. OpenAI-format clients reach
 * Bedrock through openAiRequestToAnthropic first, so this one step serves both client formats.
 * The body is untrusted JSON: every field read is checked, and what Converse cannot express
 * (image URLs, documents, server tools, structured output) is refused, never silently dropped.
 */
import { TranslationError } from './errors';
import { isRecord, optionalNumber, optionalPositiveInt, requireString } from './guards';
import type { ConverseContentBlock, ConverseImageFormat, ConverseMessage, ConverseRequest, ConverseToolChoice, ConverseToolResultContent } from './converse-types';

const IMAGE_FORMATS: Readonly<Record<string, ConverseImageFormat>> = {
  'image/png': 'png',
  'image/jpeg': 'jpeg',
  'image/jpg': 'jpeg',
  'image/gif': 'gif',
  'image/webp': 'webp',
};

/** Converts an Anthropic Messages body (the model goes in the URL, not here). */
export function anthropicRequestToConverse(body: unknown): ConverseRequest {
  if (!isRecord(body)) throw new TranslationError('the request body must be a JSON object');
  if (!Array.isArray(body.messages) || body.messages.length === 0) throw new TranslationError('must be a non-empty array', 'messages');
  const system = systemBlocks(body.system, 'system');
  const messages: ConverseMessage[] = [];
  body.messages.forEach((m, i) => {
    const param = `messages.${i}`;
    if (!isRecord(m)) throw new TranslationError('must be an object', param);
    if (m.role === 'system') {
      // Converse has one system prompt: system turns count only before the conversation starts.
      if (messages.length > 0) throw new TranslationError('Amazon Bedrock accepts system content only before the first user turn', `${param}.role`);
      system.push(...systemBlocks(m.content, `${param}.content`));
      return;
    }
    if (m.role !== 'user' && m.role !== 'assistant') throw new TranslationError("must be 'user', 'assistant' or 'system'", `${param}.role`);
    messages.push({ role: m.role, content: contentBlocks(m.content, `${param}.content`) });
  });
  if (messages.length === 0) throw new TranslationError('needs at least one user or assistant turn', 'messages');

  const out: ConverseRequest = { messages };
  if (system.length > 0) out.system = system;
  const inference: NonNullable<ConverseRequest['inferenceConfig']> = {};
  const maxTokens = optionalPositiveInt(body.max_tokens, 'max_tokens');
  if (maxTokens !== undefined) inference.maxTokens = maxTokens;
  const temperature = optionalNumber(body.temperature, 'temperature');
  if (temperature !== undefined) inference.temperature = temperature;
  const topP = optionalNumber(body.top_p, 'top_p');
  if (topP !== undefined) inference.topP = topP;
  if (body.stop_sequences !== undefined && body.stop_sequences !== null) {
    if (!Array.isArray(body.stop_sequences) || !body.stop_sequences.every((s) => typeof s === 'string')) {
      throw new TranslationError('must be an array of strings', 'stop_sequences');
    }
    if (body.stop_sequences.length > 0) inference.stopSequences = body.stop_sequences as string[];
  }
  if (Object.keys(inference).length > 0) out.inferenceConfig = inference;

  // Model-specific fields Converse passes through to the model (Anthropic models on Bedrock know them).
  const extra: Record<string, unknown> = {};
  const topK = optionalPositiveInt(body.top_k, 'top_k');
  if (topK !== undefined) extra.top_k = topK;
  if (body.thinking !== undefined && body.thinking !== null) extra.thinking = body.thinking;
  if (Object.keys(extra).length > 0) out.additionalModelRequestFields = extra;

  if (isRecord(body.output_config) && body.output_config.format !== undefined && body.output_config.format !== null) {
    throw new TranslationError('structured output is not supported for Amazon Bedrock targets', 'output_config.format');
  }
  const toolConfig = tools(body.tools, body.tool_choice, messages);
  if (toolConfig) out.toolConfig = toolConfig;
  return out;
}

function systemBlocks(system: unknown, param: string): Array<{ text: string }> {
  if (system === undefined || system === null) return [];
  if (typeof system === 'string') return system.length > 0 ? [{ text: system }] : [];
  if (!Array.isArray(system)) throw new TranslationError('must be a string or an array of text blocks', param);
  return system.map((b, i) => {
    if (!isRecord(b) || b.type !== 'text') throw new TranslationError('only text blocks are supported', `${param}.${i}`);
    return { text: requireString(b.text, `${param}.${i}.text`) };
  });
}

function contentBlocks(content: unknown, param: string): ConverseContentBlock[] {
  if (typeof content === 'string') return [{ text: content }];
  if (!Array.isArray(content)) throw new TranslationError('must be a string or an array of content blocks', param);
  return content.map((b, i) => contentBlock(b, `${param}.${i}`));
}

function contentBlock(b: unknown, param: string): ConverseContentBlock {
  if (!isRecord(b)) throw new TranslationError('must be an object', param);
  switch (b.type) {
    case 'text':
      return { text: requireString(b.text, `${param}.text`) };
    case 'image':
      return { image: image(b.source, `${param}.source`) };
    case 'tool_use': {
      if (!isRecord(b.input)) throw new TranslationError('must be an object', `${param}.input`);
      return { toolUse: { toolUseId: requireString(b.id, `${param}.id`), name: requireString(b.name, `${param}.name`), input: b.input } };
    }
    case 'tool_result':
      return {
        toolResult: {
          toolUseId: requireString(b.tool_use_id, `${param}.tool_use_id`),
          content: toolResultContent(b.content, `${param}.content`),
          status: b.is_error === true ? 'error' : 'success',
        },
      };
    case 'thinking':
      return { reasoningContent: { reasoningText: { text: requireString(b.thinking, `${param}.thinking`), ...(typeof b.signature === 'string' ? { signature: b.signature } : {}) } } };
    case 'redacted_thinking':
      return { reasoningContent: { redactedContent: requireString(b.data, `${param}.data`) } };
    default:
      throw new TranslationError(`content blocks of type '${String(b.type)}' are not supported for Amazon Bedrock targets`, `${param}.type`);
  }
}

function image(source: unknown, param: string): { format: ConverseImageFormat; source: { bytes: string } } {
  if (!isRecord(source) || source.type !== 'base64') {
    throw new TranslationError('Amazon Bedrock takes images as base64 data, not URLs', param);
  }
  const mediaType = requireString(source.media_type, `${param}.media_type`).toLowerCase();
  const format = IMAGE_FORMATS[mediaType];
  if (!format) throw new TranslationError(`image type '${mediaType}' is not supported (png, jpeg, gif, webp)`, `${param}.media_type`);
  const data = requireString(source.data, `${param}.data`);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data)) throw new TranslationError('must be base64', `${param}.data`);
  return { format, source: { bytes: data } };
}

function toolResultContent(content: unknown, param: string): ConverseToolResultContent[] {
  if (content === undefined || content === null) return [];
  if (typeof content === 'string') return [{ text: content }];
  if (!Array.isArray(content)) throw new TranslationError('must be a string or an array of blocks', param);
  return content.map((b, i) => {
    if (isRecord(b) && b.type === 'text') return { text: requireString(b.text, `${param}.${i}.text`) };
    if (isRecord(b) && b.type === 'image') return { image: image(b.source, `${param}.${i}.source`) };
    throw new TranslationError('tool results may hold text and image blocks only', `${param}.${i}`);
  });
}

function tools(rawTools: unknown, rawChoice: unknown, messages: readonly ConverseMessage[]): ConverseRequest['toolConfig'] {
  if (rawTools === undefined || rawTools === null) {
    if (rawChoice !== undefined && rawChoice !== null && !(isRecord(rawChoice) && rawChoice.type === 'none')) {
      throw new TranslationError('tool_choice needs tools', 'tool_choice');
    }
    return undefined;
  }
  if (!Array.isArray(rawTools)) throw new TranslationError('must be an array', 'tools');
  const specs = rawTools.map((t, i) => {
    const param = `tools.${i}`;
    if (!isRecord(t)) throw new TranslationError('must be an object', param);
    if (t.type !== undefined && t.type !== null && t.type !== 'custom') {
      throw new TranslationError(`server tools ('${String(t.type)}') are not supported for Amazon Bedrock targets`, `${param}.type`);
    }
    if (!isRecord(t.input_schema)) throw new TranslationError('must be a JSON schema object', `${param}.input_schema`);
    const description = t.description === undefined || t.description === null ? undefined : requireString(t.description, `${param}.description`);
    return { toolSpec: { name: requireString(t.name, `${param}.name`), ...(description ? { description } : {}), inputSchema: { json: t.input_schema } } };
  });
  if (specs.length === 0) return undefined;
  let toolChoice: ConverseToolChoice | undefined;
  if (rawChoice !== undefined && rawChoice !== null) {
    if (!isRecord(rawChoice)) throw new TranslationError('must be an object', 'tool_choice');
    switch (rawChoice.type) {
      case 'auto':
        toolChoice = { auto: {} };
        break;
      case 'any':
        toolChoice = { any: {} };
        break;
      case 'tool':
        toolChoice = { tool: { name: requireString(rawChoice.name, 'tool_choice.name') } };
        break;
      case 'none': {
        // Converse has no 'none': leaving the tools out says the same, unless the history uses them.
        const usesTools = messages.some((m) => m.content.some((c) => 'toolUse' in c || 'toolResult' in c));
        if (usesTools) throw new TranslationError("tool_choice 'none' with tool calls in the conversation is not supported for Amazon Bedrock targets", 'tool_choice');
        return undefined;
      }
      default:
        throw new TranslationError("must be 'auto', 'any', 'tool' or 'none'", 'tool_choice.type');
    }
  }
  return { tools: specs, ...(toolChoice ? { toolChoice } : {}) };
}
