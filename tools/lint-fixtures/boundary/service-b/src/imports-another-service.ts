// FIXTURE: a service importing another service. Lint must reject this file.
import { GatewayModule } from '@imagebind-llm/gateway';

export const leaked = GatewayModule;
