export * from './generated/imagebind/gateway/v1/gateway';
export * from './generated/imagebind/gateway/v1/batch';
