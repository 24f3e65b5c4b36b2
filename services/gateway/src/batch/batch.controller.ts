import { Controller, Get, Inject, Param, Post, Query, Req, Res } from '@nestjs/common';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { acceptRequestId, REQUEST_ID_KEY } from '@imagebind-llm/observability';
import { gatewayV1 } from '@imagebind-llm/proto';
import type { Request, Response } from 'express';
import type { AccessControl } from '../access';
import { toOpenAiError } from '../rest';
import { ACCESS, BATCH } from '../tokens';
import type { BatchBackend } from './batch-backend';

/**
 * The batch API over REST (issue #6): the same BatchJobsService as gRPC, with the messages in their
 * protobuf JSON mapping. `GET /v1/batches/{id}/results` exports the results as JSON Lines, one
 * object per item in index order, streamed as they are read (`?follow=true` waits for the rest).
 */
@Controller('v1/batches')
export class BatchController {
  constructor(
    @Inject(BATCH) private readonly batch: BatchBackend | null,
    @Inject(ACCESS) private readonly access: AccessControl,
  ) {}

  private async open(req: Request, res: Response): Promise<string> {
    const header = (name: string): string | undefined => {
      const v = req.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    res.setHeader(REQUEST_ID_KEY, acceptRequestId(header(REQUEST_ID_KEY)));
    if (this.batch === null) {
      throw DomainError.notImplemented(
        'batch jobs are not configured on this gateway: set GATEWAY_REDIS_URL',
      );
    }
    const credentials: { authorization?: string; apiKey?: string } = {};
    const authorization = header('authorization');
    const apiKey = header('x-api-key');
    if (authorization !== undefined) credentials.authorization = authorization;
    if (apiKey !== undefined) credentials.apiKey = apiKey;
    return this.access.admit(credentials);
  }

  private fail(res: Response, error: unknown): void {
    const e = toOpenAiError(error);
    if (res.headersSent) {
      res.end();
      return;
    }
    res.status(e.status).set(e.headers).json(e.body);
  }

  @Post()
  async submit(@Req() req: Request, @Res() res: Response): Promise<void> {
    try {
      const tenant = await this.open(req, res);
      const request = gatewayV1.SubmitBatchJobRequest.fromJSON(req.body);
      const response = await this.batch!.service.submit(request, tenant);
      res.status(201).json(gatewayV1.BatchJob.toJSON(response.job!));
    } catch (error) {
      this.fail(res, error);
    }
  }

  @Get()
  async list(
    @Req() req: Request,
    @Res() res: Response,
    @Query('page_token') pageToken?: string,
  ): Promise<void> {
    try {
      const tenant = await this.open(req, res);
      const page = await this.batch!.service.list(
        { pageSize: 0, pageToken: pageToken ?? '', states: [] },
        tenant,
      );
      res.status(200).json(gatewayV1.ListBatchJobsResponse.toJSON(page));
    } catch (error) {
      this.fail(res, error);
    }
  }

  @Get(':id')
  async get(@Param('id') id: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    try {
      const tenant = await this.open(req, res);
      const { job } = await this.batch!.service.get(id, tenant);
      res.status(200).json(gatewayV1.BatchJob.toJSON(job!));
    } catch (error) {
      this.fail(res, error);
    }
  }

  @Post(':id/cancel')
  async cancel(@Param('id') id: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    try {
      const tenant = await this.open(req, res);
      const { job } = await this.batch!.service.cancel(id, tenant);
      res.status(200).json(gatewayV1.BatchJob.toJSON(job!));
    } catch (error) {
      this.fail(res, error);
    }
  }

  @Get(':id/results')
  async results(
    @Param('id') id: string,
    @Req() req: Request,
    @Res() res: Response,
    @Query('start_index') startIndex?: string,
    @Query('follow') follow?: string,
  ): Promise<void> {
    const controller = new AbortController();
    res.on('close', () =>
      controller.abort(new DomainError(ErrorCode.Cancelled, 'the HTTP client went away')),
    );
    try {
      const tenant = await this.open(req, res);
      const stream = this.batch!.service.results(
        { jobId: id, startIndex: Number(startIndex ?? '0'), follow: follow === 'true' },
        tenant,
        controller.signal,
      );
      const it = stream[Symbol.asyncIterator]();
      let next = await it.next(); // errors (NOT_FOUND, bad index) still get an HTTP status
      res.status(200).type('application/x-ndjson');
      while (next.done !== true) {
        // index always written (the JSON mapping would drop 0): exports are read line by line.
        const line = {
          index: next.value.index,
          ...(gatewayV1.StreamBatchJobResultsResponse.toJSON(next.value) as object),
        };
        res.write(`${JSON.stringify(line)}\n`);
        next = await it.next();
      }
      res.end();
    } catch (error) {
      this.fail(res, error);
    }
  }
}
