export {
  BIND_COMPONENT,
  BindRuntime,
  type BindLoadOptions,
  type BindModelInfo,
  type BindRuntimeOptions,
} from './bind-runtime';
export { BindServiceImpl, DEFAULT_BIND_MAX_ROWS, type BindServiceOptions } from './bind.service-impl';
export { BIND_BATCHER_DEFAULTS, bindEnvSchema } from './host/bind-env.schema';
export { runBindService } from './host/run-bind-service';
