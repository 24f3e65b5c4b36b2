import type { gatewayV1 } from '@imagebind-llm/proto';
import { PartBudget, parseContentPart, type MediaPolicy } from './content-parts';
import {
  at,
  expectArray,
  expectObject,
  invalidAt,
  optionalNumber,
  optionalString,
  rejectUnknownKeys,
  requireServedModel,
} from './json-reader';

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

/**
 * `POST /v1/search` (an ImageBind extension; OpenAI has no such endpoint): the inputs are content
 * parts exactly as in `/v1/embeddings` `imagebind_inputs` (every text part is a TEXT input), fused
 * by their weights as for Generate, and searched for the `k` nearest stored items.
 */
export function parseSearchRequest(body: unknown, options: SearchParseOptions): ParsedSearchRequest {
  const obj = expectObject(body, '');
  rejectUnknownKeys(obj, '', ['model', 'inputs', 'k', 'collection']);
  const model = requireServedModel(obj, options.modelId);
  const budget = new PartBudget(options.limits);
  const raw = expectArray(obj['inputs'], 'inputs');
  if (raw.length === 0) {
    throw invalidAt('inputs', 'must hold at least one content part (image_url, input_audio, text, ...)');
  }
  const inputs: gatewayV1.MultimodalInput[] = [];
  const inputPaths: string[] = [];
  raw.forEach((part, i) => {
    const path = at('inputs', i);
    const parsed = parseContentPart(part, path, options, budget, true);
    if (parsed.kind === 'input') {
      inputs.push(parsed.input);
      inputPaths.push(path);
    }
  });
  const k = optionalNumber(obj, 'k', '', { min: 1, max: MAX_SEARCH_HITS, integer: true });
  const collection = optionalString(obj, 'collection', '') ?? '';
  const request: gatewayV1.SearchRequest = { inputs, collection };
  if (k !== undefined) request.k = k;
  return { request, model, inputPaths };
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
