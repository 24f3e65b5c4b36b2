import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import {
  float32Tensor,
  readFloat32Tensor,
  type CallContext,
  type ServiceHandlers,
} from '@imagebind-llm/grpc-kit';
import { commonV1, type bindV1 } from '@imagebind-llm/proto';
import type { BatchingMetrics } from '../encoder/batching-metrics';
import type { ModelSlot } from '../encoder/model-slot';
import { BIND_COMPONENT, type BindRuntime } from './bind-runtime';

export interface BindServiceOptions {
  /** Most query rows in one Project request (env BIND_MAX_ROWS). */
  readonly maxRows?: number;
  readonly metrics?: BatchingMetrics;
}

export const DEFAULT_BIND_MAX_ROWS = 256;

/**
 * BindService (proto/imagebind/bind/v1) over a BindRuntime. Hosted by services/bind and, in
 * process, by standalone mode.
 */
export class BindServiceImpl {
  private readonly maxRows: number;

  constructor(
    private readonly slot: ModelSlot<BindRuntime>,
    private readonly options: BindServiceOptions = {},
  ) {
    this.maxRows = options.maxRows ?? DEFAULT_BIND_MAX_ROWS;
  }

  handlers(): ServiceHandlers<typeof bindV1.BindServiceService> {
    return {
      project: (request, ctx) => this.project(request, ctx),
      getModelStatus: () => this.getModelStatus(),
    };
  }

  async project(
    request: bindV1.ProjectRequest,
    ctx?: Pick<CallContext, 'signal' | 'deadline'>,
  ): Promise<bindV1.ProjectResponse> {
    try {
      const wanted = request.model ?? { name: '', version: '' };
      if (wanted.name !== '' && wanted.name !== BIND_COMPONENT) {
        throw new DomainError(
          ErrorCode.NotFound,
          `model.name: this replica serves ${BIND_COMPONENT}, not ${wanted.name}; leave it empty for the default`,
          { field: 'model.name' },
        );
      }
      const runtime = this.slot.get();
      const { info } = runtime;
      if (wanted.version !== '' && wanted.version !== info.version) {
        throw new DomainError(
          ErrorCode.NotFound,
          `model.version: ${BIND_COMPONENT} version ${wanted.version} is not loaded here (loaded: ${info.version})`,
          { field: 'model.version' },
        );
      }
      const rows = request.queries?.shape.length === 2 ? request.queries.shape[0] : undefined;
      if (rows !== undefined && rows > this.maxRows) {
        // Checked before the tensor is read, so an oversized request costs nothing more.
        throw new DomainError(
          ErrorCode.PayloadTooLarge,
          `queries: at most ${this.maxRows} rows per request, got ${rows}; split the request`,
          { field: 'queries', limit: this.maxRows },
        );
      }
      const { data, shape } = readFloat32Tensor(request.queries, 'queries', { rank: 2, lastDim: info.inDim });
      const n = shape[0]!;
      if (n < 1) throw DomainError.invalidInput('queries: at least one row is required', 'queries');
      const visual = await runtime.project(data, n, {
        ...(ctx === undefined ? {} : { signal: ctx.signal, deadline: ctx.deadline }),
      });
      this.options.metrics?.request(info.label);
      return {
        visualQueries: float32Tensor(visual, [n, info.outDim]),
        model: { name: info.component, version: info.version },
      };
    } catch (error) {
      this.options.metrics?.request(BIND_COMPONENT, error);
      throw error;
    }
  }

  // Async for the handler signature; the answer is always at hand.
  // eslint-disable-next-line @typescript-eslint/require-await
  async getModelStatus(): Promise<bindV1.GetModelStatusResponse> {
    const info = this.slot.current?.info;
    const state = this.slot.state;
    return {
      models: [
        {
          model: { name: BIND_COMPONENT, version: info?.version ?? '' },
          state:
            state === 'failed'
              ? commonV1.ModelState.MODEL_STATE_FAILED
              : info === undefined
                ? commonV1.ModelState.MODEL_STATE_LOADING
                : commonV1.ModelState.MODEL_STATE_READY,
          executionProvider: info?.executionProvider ?? '',
          sourceSha256: info?.sourceSha256 ?? '',
          message: state === 'failed' ? (this.slot.failureMessage ?? 'failed') : '',
        },
      ],
    };
  }
}
