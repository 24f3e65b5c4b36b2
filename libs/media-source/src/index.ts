export { checkSource, MAX_SOURCE_URI_LENGTH, type ParsedSource } from './check-source';
export { readSource, streamSource } from './read-source';
export { isTransientSourceError } from './source-errors';
export {
  assertValidPolicy,
  isValidBucketName,
  policyProblems,
  type MediaSourcePolicy,
  type ObjectStorePolicy,
} from './media-source-policy';
export { isBlockedAddress, isHostAllowed, isLoopbackName } from './address-guard';
