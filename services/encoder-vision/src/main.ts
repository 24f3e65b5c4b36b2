import 'reflect-metadata';
import { runEncoderService } from '@imagebind-llm/serving';

// Rows are clips: an image is 1, a video 15, so a batch holds two videos or 32 images, and the
// queue a request of 16 videos.
void runEncoderService({
  service: 'encoder-vision',
  modalities: ['image', 'video'],
  grpcPort: 50071,
  httpPort: 9071,
  maxBatch: 32,
  maxQueue: 256,
  maxInputs: 16,
});
