import { SERVICE_NAMES, retrieverV1 } from '@imagebind-llm/proto';
import { runService } from '../../host/service-host';
import { RetrieverServiceImpl } from '../retriever.service-impl';
import { retrieverEnvSchema } from './retriever-env.schema';
import { openRetrieverStore, RetrieverStoreRuntime, type OpenQdrant } from './retriever-store';

export interface RetrieverServiceOptions {
  readonly openQdrant: OpenQdrant;
}

/**
 * Runs the retriever deployable (services/retriever): RetrieverService over the VectorStore that
 * RETRIEVER_DRIVER names. The store opens before anything listens (the handlers are registered
 * over it); the visual cache is seeded during warm-up, so the replica turns ready with it.
 */
export async function runRetrieverService(options: RetrieverServiceOptions): Promise<void> {
  await runService('retriever', retrieverEnvSchema, async (env, { logger }) => {
    const store = await openRetrieverStore(env, options.openQdrant);
    const retriever = new RetrieverServiceImpl(store, {
      ...(env.RETRIEVER_IMPORT_ROOT === undefined ? {} : { importRoot: env.RETRIEVER_IMPORT_ROOT }),
    });
    const runtime = new RetrieverStoreRuntime(store, env, logger);
    return {
      register: (server) =>
        server.addService(SERVICE_NAMES.retriever, retrieverV1.RetrieverServiceService, retriever.handlers()),
      load: () => Promise.resolve(runtime),
      describe: () => runtime.describe(),
    };
  });
}
