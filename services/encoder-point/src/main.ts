import 'reflect-metadata';
import { runEncoderService } from '@imagebind-llm/serving';

// One row per cloud; grouping (FPS + kNN) runs before the queue.
void runEncoderService({
  service: 'encoder-point',
  modalities: ['point'],
  grpcPort: 50074,
  httpPort: 9074,
  maxBatch: 8,
  maxQueue: 64,
});
