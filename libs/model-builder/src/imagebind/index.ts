export * from './imagebind-config';
export * from './imagebind-keys';
export * from './encoder-ops';
export * from './transformer-block';
export * from './vision.builder';
export * from './audio.builder';
export * from './text.builder';
export * from './point.builder';
