import { BatchJobKind, BatchJobState, gatewayV1, type BatchJob } from '@imagebind-llm/client';
import { CliError } from '../cli-error';

/** `--kind` names → contract kinds. */
export const KIND_BY_NAME: Readonly<Record<string, BatchJobKind>> = {
  generate: BatchJobKind.BATCH_JOB_KIND_GENERATE,
  embed: BatchJobKind.BATCH_JOB_KIND_EMBED,
  'index-build': BatchJobKind.BATCH_JOB_KIND_INDEX_BUILD,
  'index-import': BatchJobKind.BATCH_JOB_KIND_INDEX_IMPORT,
};

export function parseKind(name: string | undefined): BatchJobKind {
  if (name === undefined) throw new CliError(`--kind is required: ${Object.keys(KIND_BY_NAME).join('|')}`);
  const kind = KIND_BY_NAME[name];
  if (kind === undefined) {
    throw new CliError(
      `--kind must be one of ${Object.keys(KIND_BY_NAME).join('|')}, got ${JSON.stringify(name)}`,
    );
  }
  return kind;
}

/** `RUNNING`, `COMPLETED_WITH_ERRORS`, ... (the contract name without its prefix). */
export function stateName(state: BatchJobState): string {
  return gatewayV1.batchJobStateToJSON(state).replace(/^BATCH_JOB_STATE_/, '');
}

export function kindName(kind: BatchJobKind): string {
  return gatewayV1
    .batchJobKindToJSON(kind)
    .replace(/^BATCH_JOB_KIND_/, '')
    .toLowerCase()
    .replace(/_/g, '-');
}

/** `running`, `RUNNING` or `BATCH_JOB_STATE_RUNNING` → the contract state. */
export function parseState(text: string): BatchJobState {
  const upper = text.trim().toUpperCase().replace(/-/g, '_');
  const state = gatewayV1.batchJobStateFromJSON(
    upper.startsWith('BATCH_JOB_STATE_') ? upper : `BATCH_JOB_STATE_${upper}`,
  );
  if (state === BatchJobState.UNRECOGNIZED || state === BatchJobState.BATCH_JOB_STATE_UNSPECIFIED) {
    const names = 'queued, running, succeeded, completed_with_errors, failed, cancelling, cancelled';
    throw new CliError(`--state must be one of ${names}, got ${JSON.stringify(text)}`);
  }
  return state;
}

/**
 * Exit status of a finished job, as documented in the usage: 0 SUCCEEDED, 3 COMPLETED_WITH_ERRORS,
 * 4 FAILED or CANCELLED; undefined while the job is not final.
 */
export function finalExitCode(state: BatchJobState): number | undefined {
  switch (state) {
    case BatchJobState.BATCH_JOB_STATE_SUCCEEDED:
      return 0;
    case BatchJobState.BATCH_JOB_STATE_COMPLETED_WITH_ERRORS:
      return 3;
    case BatchJobState.BATCH_JOB_STATE_FAILED:
    case BatchJobState.BATCH_JOB_STATE_CANCELLED:
      return 4;
    case BatchJobState.BATCH_JOB_STATE_UNSPECIFIED:
    case BatchJobState.BATCH_JOB_STATE_QUEUED:
    case BatchJobState.BATCH_JOB_STATE_RUNNING:
    case BatchJobState.BATCH_JOB_STATE_CANCELLING:
    case BatchJobState.UNRECOGNIZED:
      return undefined;
  }
}

/** The job as one JSON object (the contract's JSON mapping: enum names, ISO timestamps). */
export function jobJson(job: BatchJob): string {
  return JSON.stringify(gatewayV1.BatchJob.toJSON(job));
}

/** A few human-readable lines about a job. */
export function describeJob(job: BatchJob): string {
  const p = job.progress ?? { total: 0, succeeded: 0, failed: 0, cancelled: 0 };
  const done = p.succeeded + p.failed + p.cancelled;
  const lines = [
    `job       ${job.jobId}`,
    `kind      ${kindName(job.kind)}`,
    `state     ${stateName(job.state)}`,
    `progress  ${done}/${p.total} done: ${p.succeeded} succeeded, ${p.failed} failed, ${p.cancelled} cancelled`,
  ];
  if (job.createTime !== undefined) lines.push(`created   ${job.createTime.toISOString()}`);
  if (job.finishTime !== undefined) lines.push(`finished  ${job.finishTime.toISOString()}`);
  if (job.errorMessage !== '') lines.push(`error     ${job.errorMessage}`);
  return `${lines.join('\n')}\n`;
}
