export * from './bilinear-resize';
export * from './ffmpeg.adapter';
export * from './video-clip-sampler';
export * from './video.preprocess';
export * from './libav.adapter';
