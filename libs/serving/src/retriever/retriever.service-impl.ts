import { isAbsolute, join, normalize, sep } from 'node:path';
import { DomainError, ErrorCode } from '@imagebind-llm/errors';
import { readFloat32Tensor, type CallContext, type ServiceHandlers } from '@imagebind-llm/grpc-kit';
import { type retrieverV1 } from '@imagebind-llm/proto';
import {
  CACHE_COLLECTION,
  importFaissIndex,
  type VectorPoint,
  type VectorStore,
} from '@imagebind-llm/vector-store';
import { MessageChannel } from '../decoder/message-channel';

export interface RetrieverLimits {
  /** Most points one Upsert may carry. */
  readonly maxUpsertPoints: number;
  /** Most query rows one Search may carry. */
  readonly maxQueries: number;
}

const NO_INDEX_STEP = { indexPhase: '', indexDone: 0, indexTotal: 0 } as const;

export const DEFAULT_RETRIEVER_LIMITS: RetrieverLimits = { maxUpsertPoints: 10_000, maxQueries: 256 };

/**
 * RetrieverService over a VectorStore (ARCHITECTURE §3): the visual cache and cross-modal search.
 * Hosted by services/retriever and, in process, by standalone mode. Imports read faiss files
 * only below `importRoot`, so a request cannot name arbitrary files on the host.
 */
export class RetrieverServiceImpl {
  constructor(
    readonly store: VectorStore,
    private readonly options: { importRoot?: string; limits?: RetrieverLimits } = {},
  ) {}

  private get limits(): RetrieverLimits {
    return this.options.limits ?? DEFAULT_RETRIEVER_LIMITS;
  }

  handlers(): ServiceHandlers<typeof retrieverV1.RetrieverServiceService> {
    return {
      search: (req, ctx) => this.search(req, ctx),
      upsert: (req) => this.upsert(req),
      delete: (req) => this.delete(req),
      importIndex: (req, ctx) => this.importIndex(req, ctx),
      getCollection: (req) => this.getCollection(req),
    };
  }

  async search(
    req: retrieverV1.SearchRequest,
    ctx?: Pick<CallContext, 'signal'>,
  ): Promise<retrieverV1.SearchResponse> {
    const collection = req.collection || CACHE_COLLECTION;
    if (req.k < 1 || req.k > 1000)
      throw DomainError.invalidInput(`k: must be in [1, 1000], got ${req.k}`, 'k');
    const info = await this.store.describe(collection);
    if (info === undefined) throw DomainError.notFound(`collection "${collection}" does not exist`);
    const { data, shape } = readFloat32Tensor(req.queries, 'queries', { rank: 2, lastDim: info.dimension });
    if (shape[0]! < 1 || shape[0]! > this.limits.maxQueries) {
      throw DomainError.invalidInput(
        `queries: 1..${this.limits.maxQueries} rows per call, got ${shape[0]}`,
        'queries',
      );
    }
    const results = await this.store.search(collection, data, {
      k: req.k,
      includeVectors: req.includeVectors,
      includePayloads: req.includePayloads,
      ...(ctx === undefined ? {} : { signal: ctx.signal }),
    });
    return {
      results: results.map((hits) => ({
        hits: hits.map((h) => ({
          id: h.id,
          score: h.score,
          vector: h.vector === undefined ? [] : Array.from(h.vector),
          payload: { ...(h.payload ?? {}) },
        })),
      })),
    };
  }

  async upsert(req: retrieverV1.UpsertRequest): Promise<retrieverV1.UpsertResponse> {
    const collection = req.collection || CACHE_COLLECTION;
    if (req.points.length === 0)
      throw DomainError.invalidInput('points: at least one point is required', 'points');
    if (req.points.length > this.limits.maxUpsertPoints) {
      throw new DomainError(
        ErrorCode.PayloadTooLarge,
        `points: at most ${this.limits.maxUpsertPoints} per call, got ${req.points.length}; split the upsert`,
        { field: 'points' },
      );
    }
    const dim = req.points[0]!.vector.length;
    if (dim === 0) throw DomainError.invalidInput('points[0].vector: must not be empty', 'points[0].vector');
    await this.store.ensureCollection(collection, (await this.store.describe(collection))?.dimension ?? dim);
    const points: VectorPoint[] = req.points.map((p) => ({
      id: Number(p.id),
      vector: Float32Array.from(p.vector),
      payload: p.payload,
    }));
    return { upserted: await this.store.upsert(collection, points) };
  }

  async delete(req: retrieverV1.DeleteRequest): Promise<retrieverV1.DeleteResponse> {
    const collection = req.collection || CACHE_COLLECTION;
    return { deleted: await this.store.delete(collection, req.ids.map(Number)) };
  }

  async getCollection(req: retrieverV1.GetCollectionRequest): Promise<retrieverV1.GetCollectionResponse> {
    const collection = req.collection || CACHE_COLLECTION;
    const info = await this.store.describe(collection);
    if (info === undefined) throw DomainError.notFound(`collection "${collection}" does not exist`);
    return { collection: info.name, dimension: info.dimension, count: info.count, driver: info.driver };
  }

  async *importIndex(
    req: retrieverV1.ImportIndexRequest,
    ctx: Pick<CallContext, 'signal'>,
  ): AsyncGenerator<retrieverV1.ImportIndexResponse> {
    const path = this.resolveImportPath(req.sourcePath);
    const collection = req.collection || CACHE_COLLECTION;
    const progress = new MessageChannel<retrieverV1.ImportIndexResponse>();
    let rows = { imported: 0, total: 0 };
    let lastPhase = '';
    let lastPercent = -1;
    importFaissIndex(this.store, collection, path, {
      replace: req.replace,
      signal: ctx.signal,
      onProgress: (imported, total) => {
        rows = { imported, total };
        progress.push({ ...rows, ...NO_INDEX_STEP, done: false, indexType: '' });
      },
      // The IVF build after the last row reports a step per 256 rows: one message per percent.
      onIndexProgress: ({ phase, done, total }) => {
        const percent = Math.floor((100 * done) / total);
        if (phase === lastPhase && percent === lastPercent) return;
        lastPhase = phase;
        lastPercent = percent;
        progress.push({
          ...rows,
          done: false,
          indexType: '',
          indexPhase: phase,
          indexDone: done,
          indexTotal: total,
        });
      },
    }).then(
      (r) => {
        progress.push({
          imported: r.imported,
          total: r.total,
          ...NO_INDEX_STEP,
          done: true,
          indexType: r.indexType,
        });
        progress.end();
      },
      (error: unknown) => progress.fail(error),
    );
    yield* progress.drain();
  }

  private resolveImportPath(source: string): string {
    const root = this.options.importRoot;
    if (root === undefined) {
      throw new DomainError(
        ErrorCode.FailedPrecondition,
        'index import is disabled on this retriever: set RETRIEVER_IMPORT_ROOT to the folder holding index files',
      );
    }
    if (source === '' || isAbsolute(source) || /^[a-z][a-z0-9+.-]*:/i.test(source)) {
      throw DomainError.invalidInput(
        `source_path: give a path relative to the import root, got "${source}"`,
        'source_path',
      );
    }
    const clean = normalize(source);
    if (clean === '..' || clean.startsWith(`..${sep}`) || clean.split(sep).includes('..')) {
      throw DomainError.invalidInput(
        `source_path: ".." segments are not allowed, got "${source}"`,
        'source_path',
      );
    }
    return join(root, clean);
  }
}
