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
  POINT_GROUP_SIZE,
  POINT_NUM_GROUP,
  POINT_TRAIN_POINTS,
  validatePointCloud,
  type PointCloud,
} from './point-cloud';
