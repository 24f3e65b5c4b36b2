import 'reflect-metadata';
import { runEncoderService } from '@imagebind-llm/serving';

// Rows are clips: an audio file is 3, so a batch holds 8 files.
void runEncoderService({
  service: 'encoder-audio',
  modalities: ['audio'],
  grpcPort: 50072,
  httpPort: 9072,
  maxBatch: 24,
  maxQueue: 192,
});
