import { Controller, Get, Header, HttpStatus, Inject, Res } from '@nestjs/common';
import { GRPC_SERVER, type GrpcServer } from '@imagebind-llm/grpc-kit';
import type { ServiceMetrics } from '@imagebind-llm/observability';
import type { Response } from 'express';
import { METRICS } from './tokens';

/** Operational HTTP endpoints: Prometheus scrape, liveness and readiness for Kubernetes probes. */
@Controller()
export class HttpController {
  constructor(
    @Inject(METRICS) private readonly metrics: ServiceMetrics,
    @Inject(GRPC_SERVER) private readonly grpc: GrpcServer,
  ) {}

  @Get('metrics')
  async scrape(@Res() res: Response): Promise<void> {
    const { contentType, body } = await this.metrics.scrape();
    res.status(HttpStatus.OK).type(contentType).send(body);
  }

  /** Liveness: the event loop answers. Never depends on downstream services. */
  @Get('healthz')
  @Header('cache-control', 'no-store')
  live(): { status: string } {
    return { status: 'ok' };
  }

  /** Readiness: 200 only while the gRPC server reports SERVING (not while starting or draining). */
  @Get('readyz')
  @Header('cache-control', 'no-store')
  ready(@Res() res: Response): void {
    const ready = this.grpc.isReady;
    res
      .status(ready ? HttpStatus.OK : HttpStatus.SERVICE_UNAVAILABLE)
      .json({ status: ready ? 'ready' : 'not ready' });
  }
}
