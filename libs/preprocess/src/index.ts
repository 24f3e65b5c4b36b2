export {
  DEFAULT_DECODE_TIMEOUT_SECONDS,
  DEFAULT_MAX_IMAGE_BYTES,
  DEFAULT_MAX_IMAGE_DECODED_BYTES,
  DEFAULT_MAX_IMAGE_PIXELS,
  decodedImageBytes,
  decodeImageRgb,
  sniffImageFormat,
  type ImageFormat,
  type ImageLimits,
  type RgbImage,
} from './image/image-decode';
export {
  CLIP_MEAN,
  CLIP_STD,
  IMAGE_SIZE,
  centerCropOffset,
  preprocessImage,
  type ImageBuffers,
  preprocessRgbImage,
  resizeAndCenterCrop,
  roundHalfEven,
  shortSideResizeSize,
  toNormalizedChw,
  type ImageTensor,
} from './image/image.preprocess';
export {
  PRECISION_BITS,
  axisCoefficients,
  bicubicKernel,
  pillowResizeBicubic,
  type AxisCoefficients,
  type PixelImage,
  type Region,
} from './image/pillow-resize';
export * from './audio';
export * from './text';
export * from './point';
export * from './video';
export * from './pool';
export {
  newTensor,
  ownsItsBuffer,
  ReusableBuffers,
  ScratchBuffer,
  type ReusableBuffersLimits,
  type TensorAllocator,
} from './reusable-buffers';
export {
  mediaNative,
  mediaNativeStatus,
  setMediaNativeEnabled,
  MEDIA_NATIVE_PATH,
  MEDIA_NATIVE_AV_PATH,
  type MediaNative,
  type NativeVideoProbe,
  type ResizeKernel,
} from './native/media-native';
