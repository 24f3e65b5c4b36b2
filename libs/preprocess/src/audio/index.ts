export * from './wav-decode';
export { resampledLength, resampleSinc, sincResampleKernel, type SincKernel } from './sinc-resample';
export * from './fft';
export * from './kaldi-fbank';
export * from './clip-sampler';
export * from './audio.preprocess';
export * from './ffmpeg-audio';
