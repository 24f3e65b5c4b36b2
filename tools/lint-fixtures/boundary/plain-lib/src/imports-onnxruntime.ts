// FIXTURE: a lib other than libs/inference importing onnxruntime-node. Lint must reject this file.
import { InferenceSession } from 'onnxruntime-node';

export const session = InferenceSession;
