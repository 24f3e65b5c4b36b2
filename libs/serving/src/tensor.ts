// The wire codec lives in @imagebind-llm/grpc-kit (shared with the gateway); re-exported for the serving impls.
export { float32Tensor, readFloat32Tensor } from '@imagebind-llm/grpc-kit';
