import 'reflect-metadata';
import { runBindService } from '@imagebind-llm/serving';

// BindService on the batched bind network; settings in libs/serving/src/bind/host/bind-env.schema.ts.
void runBindService();
