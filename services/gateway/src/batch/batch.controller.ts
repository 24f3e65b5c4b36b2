import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query, Res, UseGuards } from '@nestjs/common';
import { gatewayV1 } from '@imagebind-llm/proto';
import type { Response } from 'express';
import { ApiKeyGuard } from '../http/api-key.guard';
import { RequestContext, type RestContext } from '../http/request-context';
import { streamResponse } from '../http/stream-response';
import { BATCH } from '../tokens';
import type { BatchBackend } from './batch-backend';
import { BatchEnabledGuard } from './batch-enabled.guard';
import type { BatchJobsService } from './batch-jobs.service';
import { parseSubmitBatchJobRequest } from './batch-request.schema';

/** One result per line; `index` always written (the JSON mapping would drop 0): exports are read line by line. */
async function* resultLines(
  results: AsyncIterable<gatewayV1.StreamBatchJobResultsResponse>,
): AsyncGenerator<string> {
  for await (const result of results) {
    const line = {
      index: result.index,
      ...(gatewayV1.StreamBatchJobResultsResponse.toJSON(result) as object),
    };
    yield `${JSON.stringify(line)}\n`;
  }
}

/**
 * The batch API over REST (issue #6): the same BatchJobsService as gRPC, with the messages in their
 * protobuf JSON mapping. `GET /v1/batches/{id}/results` exports the results as JSON Lines, one
 * object per item in index order, streamed as they are read (`?follow=true` waits for the rest).
 * Without batch jobs (no Redis) every route answers 501 (BatchEnabledGuard), before admission.
 */
@Controller('v1/batches')
@UseGuards(BatchEnabledGuard, ApiKeyGuard)
export class BatchController {
  constructor(@Inject(BATCH) private readonly batch: BatchBackend | null) {}

  /** Present on every route: BatchEnabledGuard refused the call otherwise. */
  private get jobs(): BatchJobsService {
    return this.batch!.service;
  }

  @Post()
  async submit(@Body() body: unknown, @RequestContext() ctx: RestContext): Promise<unknown> {
    const { job } = await this.jobs.submit(parseSubmitBatchJobRequest(body), ctx.tenant);
    return gatewayV1.BatchJob.toJSON(job!);
  }

  @Get()
  async list(@RequestContext() ctx: RestContext, @Query('page_token') pageToken?: string): Promise<unknown> {
    const page = await this.jobs.list({ pageSize: 0, pageToken: pageToken ?? '', states: [] }, ctx.tenant);
    return gatewayV1.ListBatchJobsResponse.toJSON(page);
  }

  @Get(':id')
  async get(@Param('id') id: string, @RequestContext() ctx: RestContext): Promise<unknown> {
    const { job } = await this.jobs.get(id, ctx.tenant);
    return gatewayV1.BatchJob.toJSON(job!);
  }

  @Post(':id/cancel')
  @HttpCode(200)
  async cancel(@Param('id') id: string, @RequestContext() ctx: RestContext): Promise<unknown> {
    const { job } = await this.jobs.cancel(id, ctx.tenant);
    return gatewayV1.BatchJob.toJSON(job!);
  }

  @Get(':id/results')
  async results(
    @Param('id') id: string,
    @RequestContext() ctx: RestContext,
    @Res() res: Response,
    @Query('start_index') startIndex?: string,
    @Query('follow') follow?: string,
  ): Promise<void> {
    const request = { jobId: id, startIndex: Number(startIndex ?? '0'), follow: follow === 'true' };
    const lines = resultLines(this.jobs.results(request, ctx.tenant, ctx.signal));
    await streamResponse(res, ctx.signal, lines, (r) => r.status(200).type('application/x-ndjson'));
  }
}
