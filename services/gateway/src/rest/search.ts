import { z } from '@imagebind-llm/config';
import type { gatewayV1 } from '@imagebind-llm/proto';
import { contentPartSchema, PartBudget, parseContentPart, type MediaPolicy } from './content-parts';
import { at, numberIn, parseJson, perModel, servedModel } from './json-schema';

/** Most hits one search may ask for (the SearchRequest contract). */
export const MAX_SEARCH_HITS = 1000;

export interface SearchParseOptions extends MediaPolicy {
  readonly modelId: string;
}

export interface ParsedSearchRequest {
  readonly request: gatewayV1.SearchRequest;
  readonly model: string;
  /**
   * The REST path each of `request.inputs` came from, in order: errors the services report about
   * `inputs[i]` are told in these terms (toOpenAiError).
   */
  readonly inputPaths: readonly string[];
}

const searchBodySchema = perModel((modelId: string) =>
  z.strictObject({
    model: servedModel(modelId),
    inputs: z
      .array(contentPartSchema)
      .min(1, { error: 'must hold at least one content part (image_url, input_audio, text, ...)' }),
    k: numberIn({ min: 1, max: MAX_SEARCH_HITS, integer: true }).nullish(),
    collection: z.string().nullish(),
  }),
);

/**
 * `POST /v1/search` (an ImageBind extension; OpenAI has no such endpoint): the inputs are content
 * parts exactly as in `/v1/embeddings` `imagebind_inputs` (every text part is a TEXT input), fused
 * by their weights as for Generate, and searched for the `k` nearest stored items.
 */
export function parseSearchRequest(body: unknown, options: SearchParseOptions): ParsedSearchRequest {
  const parsed = parseJson(searchBodySchema(options.modelId), body);
  const budget = new PartBudget(options.limits);
  const inputs: gatewayV1.MultimodalInput[] = [];
  const inputPaths: string[] = [];
  parsed.inputs.forEach((part, i) => {
    const path = at('inputs', i);
    const read = parseContentPart(part, path, options, budget, true);
    if (read.kind === 'input') {
      inputs.push(read.input);
      inputPaths.push(path);
    }
  });
  const request: gatewayV1.SearchRequest = { inputs, collection: parsed.collection ?? '' };
  if (parsed.k !== undefined && parsed.k !== null) request.k = parsed.k;
  return { request, model: parsed.model, inputPaths };
}

export interface SearchResponseBody {
  readonly object: 'list';
  readonly model: string;
  /** Best first. Ids are strings: they are uint64 and JSON numbers lose precision past 2^53. */
  readonly data: { readonly id: string; readonly score: number; readonly payload: Record<string, string> }[];
}

export function toSearchResponse(response: gatewayV1.SearchResponse, model: string): SearchResponseBody {
  return {
    object: 'list',
    model,
    data: response.hits.map((hit) => ({ id: String(hit.id), score: hit.score, payload: { ...hit.payload } })),
  };
}
