// FIXTURE: production code importing the test-only library. Lint must reject this file.
import { strictFake } from '@imagebind-llm/testing';

export const fake = strictFake;
