import { z } from '@imagebind-llm/config';
import { gatewayV1 } from '@imagebind-llm/proto';
import { describeJson, parseJson } from '../rest/json-schema';

/** A field of the protobuf JSON mapping, under both of its names (`manifestUri`, `manifest_uri`). */
const string = z.string().nullish();

/**
 * The top level of `POST /v1/batches` in the protobuf JSON mapping: an object whose fields have
 * their types (a body that is not an object was a 500 from fromJSON). Unknown keys are ignored, as
 * docs/rest-api.md promises for the batch endpoints. The items and options are read by the
 * generated fromJSON, and BatchJobsService checks them all.
 */
const submitBodySchema = z.looseObject({
  kind: z
    .union([z.string(), z.number()], {
      error: ({ input }) => `must be a job kind such as "BATCH_JOB_KIND_EMBED", got ${describeJson(input)}`,
    })
    .nullish(),
  items: z.array(z.unknown()).nullish(),
  manifestUri: string,
  manifest_uri: string,
  options: z.looseObject({}).nullish(),
  clientToken: string,
  client_token: string,
});

export function parseSubmitBatchJobRequest(body: unknown): gatewayV1.SubmitBatchJobRequest {
  return gatewayV1.SubmitBatchJobRequest.fromJSON(parseJson(submitBodySchema, body));
}
