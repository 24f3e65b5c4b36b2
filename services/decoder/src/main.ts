import 'reflect-metadata';
import { runDecoderService } from '@imagebind-llm/serving';

// DecoderService, continuously batched; settings in libs/serving/src/decoder/host/decoder-env.schema.ts.
void runDecoderService();
