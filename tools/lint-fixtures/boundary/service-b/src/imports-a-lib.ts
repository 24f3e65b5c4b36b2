// FIXTURE (control): a service importing a lib. Lint must accept this file.
import { ErrorCode } from '@imagebind-llm/errors';

export const code = ErrorCode.InvalidInput;
