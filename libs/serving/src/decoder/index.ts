export {
  DECODER_COMPONENT,
  DecoderRuntime,
  loadDecoderModel,
  type DecoderLoadOptions,
  type DecoderModel,
  type DecoderModelInfo,
  type DecoderRuntimeOptions,
  type DecoderState,
  type DecoderStatus,
  type GenerationEnginePort,
} from './decoder-runtime';
export { DecoderServiceImpl, type DecoderServiceOptions } from './decoder.service-impl';
export {
  KvAdmission,
  type KvAdmissionOptions,
  type KvAdmissionStatus,
  type KvReservation,
} from './kv-admission';
export { decoderEnvSchema, type DecoderEnv } from './host/decoder-env.schema';
export { runDecoderService } from './host/run-decoder-service';
