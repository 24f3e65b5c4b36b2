// Stands in for @imagebind-llm/serving in the device check's bundle, which runs `--sections steps`
// only: the service-level section needs the gRPC service stack and is measured on the CPU machines.
export const DecoderRuntime = {
  create() {
    throw new Error('the device bundle runs bench/decoder with --sections steps only');
  },
};
