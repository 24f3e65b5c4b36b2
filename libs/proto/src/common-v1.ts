export * from './generated/imagebind/common/v1/tensor';
export * from './generated/imagebind/common/v1/modality';
export * from './generated/imagebind/common/v1/model';
