import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Logger } from '@imagebind-llm/observability';
import type { Request, Response } from 'express';
import { credentialsFrom, type AccessControl } from '../access';
import { ACCESS, LOGGER } from '../tokens';
import { admitTenant, headerOf, openRestCall } from './request-context';

/**
 * Admission of every REST API call, in one place: opens the call's context (request id, span,
 * cancellation) and admits its credentials (API key, then the tenant's rate limit), so a refusal
 * (401, or 429 with `retry-after`) carries the request id like any other answer.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    @Inject(ACCESS) private readonly access: AccessControl,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async canActivate(host: ExecutionContext): Promise<boolean> {
    const http = host.switchToHttp();
    const req = http.getRequest<Request>();
    openRestCall(req, http.getResponse<Response>(), this.logger);
    admitTenant(req, await this.access.admit(credentialsFrom((name) => headerOf(req, name))));
    return true;
  }
}
