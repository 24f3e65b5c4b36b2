// Framework-free building blocks of the gateway's OpenAI-compatible REST API; the HTTP
// controllers call these and stay thin.
export * from './api-keys';
export * from './content-parts';
export * from './json-schema';
export * from './models';
export * from './openai-chat';
export * from './openai-embeddings';
export * from './openai-format';
export * from './rate-limiter';
export * from './search';
export * from './playground-config';
