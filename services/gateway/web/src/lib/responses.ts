/** Reading the JSON answers of the embeddings and search endpoints into what the panels show. */

export interface SearchHit {
  readonly id: string;
  readonly score: number;
  readonly payload: Readonly<Record<string, string>>;
}

/**
 * The vectors of a `POST /v1/embeddings` answer in input order; throws unless there is one usable
 * (non-empty, all numbers) vector per input.
 */
export function readEmbeddings(json: unknown, inputCount: number): number[][] {
  const data = (json as { data?: { index?: unknown; embedding?: unknown }[] }).data;
  const rows = Array.isArray(data) ? [...data] : [];
  rows.sort((a, b) => Number(a.index) - Number(b.index));
  const vectors = rows.map((row) =>
    Array.isArray(row.embedding) ? row.embedding.map((v) => (typeof v === 'number' ? v : Number.NaN)) : [],
  );
  if (vectors.length !== inputCount || vectors.some((v) => v.length === 0 || v.some(Number.isNaN))) {
    throw new Error(`the server sent ${vectors.length} usable embeddings for ${inputCount} inputs`);
  }
  return vectors;
}

/** The hits of a `POST /v1/search` answer; payload values that are not strings are shown as JSON. */
export function readSearchHits(json: unknown): SearchHit[] {
  const data = (json as { data?: { id?: unknown; score?: unknown; payload?: unknown }[] }).data;
  return (Array.isArray(data) ? data : []).map((hit) => {
    const payload: Record<string, string> = {};
    if (typeof hit.payload === 'object' && hit.payload !== null) {
      for (const [key, value] of Object.entries(hit.payload as Record<string, unknown>)) {
        payload[key] = typeof value === 'string' ? value : JSON.stringify(value);
      }
    }
    return { id: String(hit.id), score: Number(hit.score), payload };
  });
}
