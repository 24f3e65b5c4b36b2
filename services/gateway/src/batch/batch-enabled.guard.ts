import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { DomainError } from '@imagebind-llm/errors';
import type { Logger } from '@imagebind-llm/observability';
import type { Request, Response } from 'express';
import { openRestCall } from '../http/request-context';
import { BATCH, LOGGER } from '../tokens';
import type { BatchBackend } from './batch-backend';

/** The batch API answers 501 before admission when this gateway has no batch jobs (no Redis). */
@Injectable()
export class BatchEnabledGuard implements CanActivate {
  constructor(
    @Inject(BATCH) private readonly batch: BatchBackend | null,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  canActivate(host: ExecutionContext): boolean {
    const http = host.switchToHttp();
    openRestCall(http.getRequest<Request>(), http.getResponse<Response>(), this.logger);
    if (this.batch === null) {
      throw DomainError.notImplemented(
        'batch jobs are not configured on this gateway: set GATEWAY_REDIS_URL',
      );
    }
    return true;
  }
}
