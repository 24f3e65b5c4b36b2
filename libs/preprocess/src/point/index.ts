export { farthestPointSample } from './fps';
export { groupPointCloud, knnIndices, type GroupOptions, type PointGroups } from './group';
export {
  DEFAULT_MAX_POINT_FILE_BYTES,
  POINT_CLOUD_FORMATS,
  loadPointCloudFile,
  parsePointCloud,
  pointCloudFormatOf,
  type LoadPointCloudOptions,
  type PointCloudFormat,
} from './load';
export { normalizePointCloud, type NormalizeOptions } from './normalize';
export {
  DEFAULT_MAX_POINTS,
  POINT_TRAIN_POINTS,
  pointGroupingMinPoints,
  validatePointCloud,
  type PointCloud,
  type PointGrouping,
} from './point-cloud';
