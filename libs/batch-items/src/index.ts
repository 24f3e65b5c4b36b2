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
