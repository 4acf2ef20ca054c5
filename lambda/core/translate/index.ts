/** Translation between the OpenAI Chat Completions and Anthropic Messages formats. */
export * from './anthropic-types';
export * from './openai-types';
export * from './errors';
export * from './usage';
export * from './stop-reasons';
export * from './openai-to-anthropic';
export * from './anthropic-to-openai';
export * from './stream-anthropic-to-openai';
export * from './stream-openai-to-anthropic';
export * from './stream-passthrough';
export * from './stream-errors';
export * from './stream-framing';
export * from './converse-types';
export * from './anthropic-to-converse';
export * from './converse-to-anthropic';
