import { SERVICE_NAMES, bindV1 } from '@imagebind-llm/proto';
import { runtimeSettings } from '../../host/model-service-env.schema';
import { runService } from '../../host/service-host';
import { BIND_COMPONENT, BindRuntime } from '../bind-runtime';
import { BindServiceImpl } from '../bind.service-impl';
import { bindEnvSchema } from './bind-env.schema';

/** Runs the bind deployable (services/bind): BindService over the batched bind network. */
export async function runBindService(): Promise<void> {
  await runService('bind', bindEnvSchema, (env) => {
    const settings = runtimeSettings(env);
    return {
      load: async (_deps, hooks) =>
        BindRuntime.load(env.MODEL_REPO, {
          ...settings,
          onBatch: (event) => hooks.onBatch(BIND_COMPONENT, event),
          onQueueChange: () => hooks.onQueueChange(),
        }),
      register: (server, slot, deps) => {
        const impl = new BindServiceImpl(slot, { maxRows: env.BIND_MAX_ROWS, metrics: deps.batching });
        server.addService(SERVICE_NAMES.bind, bindV1.BindServiceService, impl.handlers());
      },
      queueDepth: (runtime) => [{ label: runtime.info.label, queuedUnits: runtime.stats().queuedUnits }],
      describe: (runtime) => ({
        models: [
          {
            model: runtime.info.label,
            version: runtime.info.version,
            executionProvider: runtime.info.executionProvider,
          },
        ],
        batch: settings.batcher,
      }),
    };
  });
}
