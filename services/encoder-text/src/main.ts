import 'reflect-metadata';
import { runEncoderService } from '@imagebind-llm/serving';

// One row per text; the text tower is small, so batches are wide.
void runEncoderService({
  service: 'encoder-text',
  modalities: ['text'],
  grpcPort: 50073,
  httpPort: 9073,
  maxBatch: 64,
  maxQueue: 512,
});
