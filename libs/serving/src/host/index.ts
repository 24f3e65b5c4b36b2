export {
  BROKEN_SESSION_FAILURES,
  HostedServiceModule,
  runService,
  serviceDeps,
  ServiceLifecycle,
  type FatalLog,
  type HostedRuntime,
  type HostedServiceOptions,
  type RuntimeHooks,
  type ServiceDeps,
  type ServiceEnv,
  type ServiceSchema,
  type ServiceSpec,
} from './service-host';
export {
  modelServiceEnv,
  runtimeSettings,
  sessionSettings,
  type ModelRepositoryEnv,
  type ModelServiceEnv,
} from './model-service-env.schema';
