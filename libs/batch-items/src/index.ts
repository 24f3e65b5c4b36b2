export {
  describeError,
  isTransient,
  ItemProcessor,
  pointIdOf,
  sdkPlatformApi,
  type ApiCall,
  type GenerateItem,
  type ItemContext,
  type ItemResult,
  type PlatformApi,
} from './item-processor';
export {
  DEADLINE_SLACK_MS,
  DEFAULT_EMBED_COALESCING,
  EmbedCoalescer,
  type EmbedCoalescingOptions,
} from './embed-coalescer';
