import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Schemas } from '@qdrant/js-client-rest' with { 'resolution-mode': 'import' };

/**
 * An in-process HTTP stand-in for the slice of Qdrant's REST API the retriever's driver uses: no
 * Qdrant server can run on the build machines (ENVIRONMENT.md), so the driver's medium tests talk
 * real HTTP on loopback to this instead. It answers exactly these operations of the official
 * client (`@qdrant/js-client-rest` 1.18) and nothing else:
 *
 * | route            | request                                        |
 * | ---------------- | ---------------------------------------------- |
 * | root             | GET  /  (the client's version check)           |
 * | getCollection    | GET  /collections/{name}                       |
 * | createCollection | PUT  /collections/{name}                       |
 * | upsertPoints     | PUT  /collections/{name}/points?wait=          |
 * | getPoints        | POST /collections/{name}/points                |
 * | deletePoints     | POST /collections/{name}/points/delete?wait=   |
 * | queryBatchPoints | POST /collections/{name}/points/query/batch    |
 *
 * Any other route, and any body feature of these routes the driver is not meant to send (named
 * vectors, filters with conditions, prefetch, ...), is answered with an error and recorded in
 * `unexpected`, which tests assert stays empty. Where Qdrant would refuse a request (unknown
 * collection, wrong vector size, bad key) the stand-in answers with Qdrant's status and error
 * envelope `{ status: { error }, time }`; success is `{ result, status: 'ok', time }`.
 *
 * Search is exact inner product over float32-rounded scores. Equal scores come back HIGHER id
 * first on purpose: Qdrant promises no order among ties, and this is the order that would break a
 * driver relying on faiss's lower-id-first order.
 */
export type StandInRoute =
  | 'root'
  | 'getCollection'
  | 'createCollection'
  | 'upsertPoints'
  | 'getPoints'
  | 'deletePoints'
  | 'queryBatchPoints';

export interface RecordedRequest {
  readonly route: StandInRoute | 'unexpected';
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** The `api-key` header (or bearer token) as sent. */
  readonly apiKey: string | undefined;
  /** The parsed JSON body, undefined when there was none. */
  readonly body: unknown;
  /** The status the stand-in answered with (0 while stalled). */
  status: number;
}

export interface QdrantStandInOptions {
  /** Read-write key (`service.api_key`); when set, every route but `/` needs a key. */
  readonly apiKey?: string;
  /** Read-only key (`service.read_only_api_key`): reads pass, writes get 403. */
  readonly readOnlyApiKey?: string;
  /** Version reported by `GET /`. Default 1.18.0, the client's own. */
  readonly version?: string;
}

export interface StoredPoint {
  readonly vector: readonly number[];
  readonly payload: Readonly<Record<string, unknown>> | null;
  readonly version: number;
}

export interface StandInCollection {
  readonly name: string;
  /** The create request's body exactly as received. */
  readonly created: Schemas['CreateCollection'];
  readonly dimension: number;
  readonly points: Map<number, StoredPoint>;
}

interface OkEnvelope<T> {
  readonly result: T;
  readonly status: 'ok';
  readonly time: number;
}

interface Reply {
  readonly status: number;
  readonly body: unknown;
  /** Qdrant's auth middleware answers in plain text, not in its JSON envelope. */
  readonly text?: boolean;
  /** `GET /` answers its VersionInfo bare, without the envelope. */
  readonly bare?: boolean;
}

interface Context {
  readonly name: string;
  readonly query: URLSearchParams;
  readonly body: unknown;
}

interface Route {
  readonly route: StandInRoute;
  readonly method: string;
  readonly pattern: RegExp;
  /** Needs a read-write key (Qdrant lets a read-only key retrieve and search only). */
  readonly write: boolean;
  readonly handle: (context: Context) => unknown;
}

/** A refusal Qdrant itself would give. */
class QdrantRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A request the stand-in does not model because the driver should never send it. */
class NotModelled extends Error {}

const DEFAULT_VERSION = '1.18.0';
const MAX_DIMENSION = 65_536;

export class QdrantStandIn {
  readonly requests: RecordedRequest[] = [];
  /** Everything the stand-in was asked but does not model; a passing test leaves it empty. */
  readonly unexpected: string[] = [];
  private readonly collections = new Map<string, StandInCollection>();
  private readonly stalled = new Set<StandInRoute>();
  private readonly routes: readonly Route[];
  private operationId = 0;
  private pointVersion = 0;

  private constructor(
    private readonly server: Server,
    readonly url: string,
    private readonly options: QdrantStandInOptions,
  ) {
    const named = '/collections/([^/]+)';
    this.routes = [
      { route: 'root', method: 'GET', pattern: /^\/$/, write: false, handle: () => this.root() },
      {
        route: 'getCollection',
        method: 'GET',
        pattern: new RegExp(`^${named}$`),
        write: false,
        handle: (c) => this.getCollection(c),
      },
      {
        route: 'createCollection',
        method: 'PUT',
        pattern: new RegExp(`^${named}$`),
        write: true,
        handle: (c) => this.createCollection(c),
      },
      {
        route: 'upsertPoints',
        method: 'PUT',
        pattern: new RegExp(`^${named}/points$`),
        write: true,
        handle: (c) => this.upsertPoints(c),
      },
      {
        route: 'getPoints',
        method: 'POST',
        pattern: new RegExp(`^${named}/points$`),
        write: false,
        handle: (c) => this.getPoints(c),
      },
      {
        route: 'deletePoints',
        method: 'POST',
        pattern: new RegExp(`^${named}/points/delete$`),
        write: true,
        handle: (c) => this.deletePoints(c),
      },
      {
        route: 'queryBatchPoints',
        method: 'POST',
        pattern: new RegExp(`^${named}/points/query/batch$`),
        write: false,
        handle: (c) => this.queryBatchPoints(c),
      },
    ];
  }

  /** Listens on an ephemeral loopback port. */
  static async start(options: QdrantStandInOptions = {}): Promise<QdrantStandIn> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const standIn = new QdrantStandIn(server, `http://127.0.0.1:${port}`, options);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => standIn.onRequest(req, res));
    return standIn;
  }

  /** Requests recorded for one route, in arrival order. */
  requestsTo(route: StandInRoute): RecordedRequest[] {
    return this.requests.filter((r) => r.route === route);
  }

  collection(name: string): StandInCollection | undefined {
    return this.collections.get(name);
  }

  /**
   * Test hook, not a route: removes a collection behind the driver's back, as another client or an
   * operator could, so a test can make the driver's cached dimension stale.
   */
  dropCollection(name: string): void {
    this.collections.delete(name);
  }

  /** From now on, requests to `route` get no answer until `close` (to exercise client timeouts). */
  stall(route: StandInRoute): void {
    this.stalled.add(route);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = process.hrtime.bigint();
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://stand-in');
      const method = req.method ?? 'GET';
      const raw = Buffer.concat(chunks).toString('utf8');
      const apiKey = headerKey(req);
      const matched = this.match(method, url.pathname);
      let body: unknown;
      let reply: Reply | undefined;
      if (raw !== '') {
        try {
          body = JSON.parse(raw) as unknown;
        } catch (error) {
          reply = refuse(400, `Format error in JSON body: ${(error as Error).message}`);
        }
      }
      const record: RecordedRequest = {
        route: matched?.route.route ?? 'unexpected',
        method,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        apiKey,
        body,
        status: 0,
      };
      this.requests.push(record);
      if (matched === undefined) {
        this.unexpected.push(`${method} ${url.pathname}: no such route in the stand-in`);
        reply = refuse(404, `stand-in: ${method} ${url.pathname} is not a route the driver should call`);
      } else if (this.stalled.has(matched.route.route)) {
        return;
      }
      reply ??= this.authorize(matched!.route, apiKey);
      reply ??= this.run(matched!.route, { name: matched!.name, query: url.searchParams, body });
      record.status = reply.status;
      send(res, reply, started);
    });
  }

  private match(method: string, path: string): { route: Route; name: string } | undefined {
    for (const route of this.routes) {
      const found = route.method === method ? route.pattern.exec(path) : null;
      if (found !== null) return { route, name: decodeURIComponent(found[1] ?? '') };
    }
    return undefined;
  }

  /** Qdrant's rules: `/` is open; no key or an unknown key is 401 (plain text); read-only keys cannot write. */
  private authorize(route: Route, key: string | undefined): Reply | undefined {
    const { apiKey, readOnlyApiKey } = this.options;
    if ((apiKey === undefined && readOnlyApiKey === undefined) || route.route === 'root') return undefined;
    if (key === undefined) {
      return { status: 401, body: 'Must provide an API key or an Authorization bearer token', text: true };
    }
    if (key === apiKey) return undefined;
    if (key === readOnlyApiKey) {
      return route.write ? refuse(403, 'Forbidden: Write access is required for this operation') : undefined;
    }
    return { status: 401, body: 'Invalid API key or JWT', text: true };
  }

  private run(route: Route, context: Context): Reply {
    try {
      return { status: 200, body: route.handle(context), bare: route.route === 'root' };
    } catch (error) {
      if (error instanceof QdrantRefusal) return refuse(error.status, error.message);
      const message = error instanceof Error ? error.message : String(error);
      if (error instanceof NotModelled) {
        this.unexpected.push(`${route.route}: ${message}`);
        return refuse(400, `stand-in does not model this request: ${message}`);
      }
      this.unexpected.push(`${route.route}: stand-in failure: ${message}`);
      return refuse(500, `Service internal error: ${message}`);
    }
  }

  private root(): Schemas['VersionInfo'] {
    return { title: 'qdrant - vector search engine', version: this.options.version ?? DEFAULT_VERSION };
  }

  private getCollection({ name }: Context): Schemas['CollectionInfo'] {
    const collection = this.existing(name);
    const created = collection.created;
    const vectors = created.vectors as Schemas['VectorParams'];
    return {
      status: 'green',
      optimizer_status: 'ok',
      indexed_vectors_count: 0,
      points_count: collection.points.size,
      segments_count: 1,
      config: {
        params: {
          vectors: { size: vectors.size, distance: vectors.distance },
          shard_number: created.shard_number ?? 1,
          replication_factor: created.replication_factor ?? 1,
          write_consistency_factor: created.write_consistency_factor ?? 1,
          on_disk_payload: created.on_disk_payload ?? true,
        },
        hnsw_config: { m: 16, ef_construct: 100, full_scan_threshold: 10_000 },
        optimizer_config: { default_segment_number: 0, flush_interval_sec: 5 },
        quantization_config: created.quantization_config ?? null,
      },
      payload_schema: {},
    };
  }

  private createCollection({ name, query, body }: Context): boolean {
    checkQuery(query, ['timeout']);
    if (this.collections.has(name))
      throw new QdrantRefusal(409, `Wrong input: Collection \`${name}\` already exists!`);
    const create = objectBody(body);
    const known = [
      'vectors',
      'shard_number',
      'replication_factor',
      'write_consistency_factor',
      'on_disk_payload',
      'quantization_config',
    ];
    const extra = Object.keys(create).filter((key) => !known.includes(key));
    if (extra.length > 0) throw new NotModelled(`collection settings ${extra.join(', ')}`);
    const vectors = create['vectors'];
    if (!isRecord(vectors) || !('size' in vectors)) {
      throw new NotModelled('named vectors (or none): the driver creates one unnamed vector');
    }
    const size = vectors['size'];
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) {
      throw new QdrantRefusal(
        400,
        `Format error in JSON body: vectors.size: invalid value: ${JSON.stringify(size)}`,
      );
    }
    if (size < 1 || size > MAX_DIMENSION) {
      throw new QdrantRefusal(
        422,
        `Validation error in JSON body: [vectors.size: value ${size} invalid, must be from 1 to ${MAX_DIMENSION}]`,
      );
    }
    const distance = vectors['distance'];
    if (distance !== 'Cosine' && distance !== 'Euclid' && distance !== 'Dot' && distance !== 'Manhattan') {
      throw new QdrantRefusal(
        400,
        `Format error in JSON body: vectors.distance: unknown variant \`${String(distance)}\`, expected one of ` +
          '`Cosine`, `Euclid`, `Dot`, `Manhattan`',
      );
    }
    for (const key of ['shard_number', 'replication_factor', 'write_consistency_factor']) {
      const value = create[key];
      if (value === undefined || value === null) continue;
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
        throw new QdrantRefusal(
          400,
          `Format error in JSON body: ${key}: invalid value: ${JSON.stringify(value)}`,
        );
      }
      if (value < 1) {
        throw new QdrantRefusal(
          422,
          `Validation error in JSON body: [${key}: value ${value} invalid, must be 1 or greater]`,
        );
      }
    }
    const quantization = create['quantization_config'];
    if (quantization !== undefined && quantization !== null) {
      const scalar = isRecord(quantization) ? quantization['scalar'] : undefined;
      if (!isRecord(scalar) || Object.keys(quantization).length !== 1) {
        throw new NotModelled('quantization other than scalar');
      }
      if (scalar['type'] !== 'int8') {
        throw new QdrantRefusal(
          400,
          `Format error in JSON body: quantization_config.scalar.type: unknown variant`,
        );
      }
    }
    this.collections.set(name, {
      name,
      created: create,
      dimension: size,
      points: new Map(),
    });
    return true;
  }

  private upsertPoints({ name, query, body }: Context): Schemas['UpdateResult'] {
    const wait = waitParam(query);
    const collection = this.existing(name);
    const request = objectBody(body);
    if ('batch' in request) throw new NotModelled('columnar `batch` upserts');
    const extra = Object.keys(request).filter((key) => key !== 'points');
    if (extra.length > 0) throw new NotModelled(`upsert fields ${extra.join(', ')}`);
    const points = request['points'];
    if (!Array.isArray(points))
      throw new QdrantRefusal(400, 'Format error in JSON body: missing field `points`');
    const staged: [number, StoredPoint][] = points.map((point: unknown, i) => {
      if (!isRecord(point))
        throw new QdrantRefusal(400, `Format error in JSON body: points[${i}]: expected a point`);
      const id = pointId(point['id'], `points[${i}].id`);
      const vector = point['vector'];
      if (!Array.isArray(vector)) throw new NotModelled(`points[${i}].vector is not a plain vector`);
      checkVector(vector, collection.dimension, `points[${i}].vector`);
      const payload = point['payload'];
      if (payload !== undefined && payload !== null && !isRecord(payload)) {
        throw new QdrantRefusal(400, `Format error in JSON body: points[${i}].payload: expected a map`);
      }
      // Qdrant keeps float32: what it returns is the float32 rounding of what was sent.
      return [
        id,
        { vector: (vector as number[]).map((v) => Math.fround(v)), payload: payload ?? null, version: 0 },
      ];
    });
    // Qdrant validates the whole request before applying any of it.
    const version = ++this.pointVersion;
    for (const [id, point] of staged) collection.points.set(id, { ...point, version });
    return this.updateResult(wait);
  }

  private getPoints({ name, query, body }: Context): Schemas['Record'][] {
    checkQuery(query, ['consistency', 'timeout']);
    const collection = this.existing(name);
    const request = objectBody(body);
    const extra = Object.keys(request).filter((key) => !['ids', 'with_payload', 'with_vector'].includes(key));
    if (extra.length > 0) throw new NotModelled(`retrieve fields ${extra.join(', ')}`);
    const ids = request['ids'];
    if (!Array.isArray(ids)) throw new QdrantRefusal(400, 'Format error in JSON body: missing field `ids`');
    const withPayload = flag(request['with_payload'], true, 'with_payload');
    const withVector = flag(request['with_vector'], false, 'with_vector');
    const seen = new Set<number>();
    const records: Schemas['Record'][] = [];
    ids.forEach((raw: unknown, i) => {
      const id = pointId(raw, `ids[${i}]`);
      const point = collection.points.get(id);
      if (point === undefined || seen.has(id)) return;
      seen.add(id);
      records.push({
        id,
        ...(withPayload ? { payload: { ...point.payload } } : {}),
        ...(withVector ? { vector: [...point.vector] } : {}),
      });
    });
    return records;
  }

  private deletePoints({ name, query, body }: Context): Schemas['UpdateResult'] {
    const wait = waitParam(query);
    const collection = this.existing(name);
    const request = objectBody(body);
    if ('points' in request) {
      const points = request['points'];
      if (!Array.isArray(points))
        throw new QdrantRefusal(400, 'Format error in JSON body: points: expected a list');
      const ids = points.map((raw: unknown, i) => pointId(raw, `points[${i}]`));
      for (const id of ids) collection.points.delete(id);
      return this.updateResult(wait);
    }
    if ('filter' in request) {
      const filter = request['filter'];
      if (!isRecord(filter) || Object.keys(filter).length > 0) {
        throw new NotModelled('delete by a filter with conditions (only the empty match-all filter is used)');
      }
      collection.points.clear();
      return this.updateResult(wait);
    }
    throw new QdrantRefusal(400, 'Format error in JSON body: expected `points` or `filter`');
  }

  private queryBatchPoints({ name, query, body }: Context): Schemas['QueryResponse'][] {
    checkQuery(query, ['consistency', 'timeout']);
    const collection = this.existing(name);
    const request = objectBody(body);
    const searches = request['searches'];
    if (!Array.isArray(searches))
      throw new QdrantRefusal(400, 'Format error in JSON body: missing field `searches`');
    const parsed = searches.map((search: unknown, i) => parseQuery(search, i, collection.dimension));
    const stored = [...collection.points.entries()];
    return parsed.map(({ vector, limit, withPayload, withVector }) => {
      const scored = stored.map(([id, point]) => ({ id, point, score: float32Dot(vector, point.vector) }));
      // Ties HIGHER id first: see the class comment.
      scored.sort((a, b) => b.score - a.score || b.id - a.id);
      return {
        points: scored.slice(0, limit).map(({ id, point, score }): Schemas['ScoredPoint'] => ({
          id,
          version: point.version,
          score,
          ...(withPayload ? { payload: { ...point.payload } } : {}),
          ...(withVector ? { vector: [...point.vector] } : {}),
        })),
      };
    });
  }

  private existing(name: string): StandInCollection {
    const collection = this.collections.get(name);
    if (collection === undefined)
      throw new QdrantRefusal(404, `Not found: Collection \`${name}\` doesn't exist!`);
    return collection;
  }

  private updateResult(wait: boolean | undefined): Schemas['UpdateResult'] {
    return { operation_id: ++this.operationId, status: wait === true ? 'completed' : 'acknowledged' };
  }
}

interface ParsedQuery {
  readonly vector: readonly number[];
  readonly limit: number;
  readonly withPayload: boolean;
  readonly withVector: boolean;
}

function parseQuery(search: unknown, i: number, dimension: number): ParsedQuery {
  const at = `searches[${i}]`;
  if (!isRecord(search))
    throw new QdrantRefusal(400, `Format error in JSON body: ${at}: expected a query request`);
  const known = ['query', 'limit', 'with_payload', 'with_vector', 'params'];
  const extra = Object.keys(search).filter((key) => !known.includes(key));
  if (extra.length > 0) throw new NotModelled(`${at} fields ${extra.join(', ')}`);
  let vector = search['query'];
  if (isRecord(vector) && Object.keys(vector).length === 1 && 'nearest' in vector) vector = vector['nearest'];
  if (!Array.isArray(vector)) throw new NotModelled(`${at}.query is not a plain nearest-vector query`);
  checkVector(vector, dimension, `${at}.query`);
  const limit = search['limit'] ?? 10;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0) {
    throw new QdrantRefusal(
      400,
      `Format error in JSON body: ${at}.limit: invalid value: ${JSON.stringify(limit)}`,
    );
  }
  if (limit < 1) {
    throw new QdrantRefusal(
      422,
      `Validation error in JSON body: [${at}.limit: value 0 invalid, must be 1 or greater]`,
    );
  }
  const params = search['params'];
  if (params !== undefined && params !== null) {
    if (!isRecord(params))
      throw new QdrantRefusal(400, `Format error in JSON body: ${at}.params: expected a map`);
    const allowed = ['exact', 'hnsw_ef', 'quantization'];
    const odd = Object.keys(params).filter((key) => !allowed.includes(key));
    if (odd.length > 0) throw new NotModelled(`${at}.params ${odd.join(', ')}`);
  }
  return {
    vector: vector as number[],
    limit,
    withPayload: flag(search['with_payload'], false, `${at}.with_payload`),
    withVector: flag(search['with_vector'], false, `${at}.with_vector`),
  };
}

/** Qdrant parses vectors as f32 and checks their length against the collection's. */
function checkVector(vector: readonly unknown[], dimension: number, at: string): void {
  const bad = vector.findIndex((v) => typeof v !== 'number' || !Number.isFinite(v));
  if (bad >= 0) {
    throw new QdrantRefusal(400, `Format error in JSON body: ${at}[${bad}]: invalid type, expected f32`);
  }
  if (vector.length !== dimension) {
    throw new QdrantRefusal(
      400,
      `Wrong input: Vector dimension error: expected dim: ${dimension}, got ${vector.length}`,
    );
  }
}

/** Inner product of float32 inputs accumulated in double and rounded once to float32. */
function float32Dot(a: readonly number[], b: readonly number[]): number {
  let sum = 0;
  for (let i = 0; i < a.length; i += 1) sum += Math.fround(a[i]!) * Math.fround(b[i]!);
  return Math.fround(sum);
}

function pointId(raw: unknown, at: string): number {
  if (typeof raw === 'string') throw new NotModelled(`${at} is a UUID; the driver writes integer ids`);
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 0) {
    throw new QdrantRefusal(
      400,
      `Format error in JSON body: ${at}: data did not match any variant of untagged enum ExtendedPointId`,
    );
  }
  return raw;
}

function flag(value: unknown, fallback: boolean, at: string): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value === 'boolean') return value;
  throw new NotModelled(`${at} is a selector, not a boolean`);
}

function objectBody(body: unknown): Record<string, unknown> {
  if (!isRecord(body)) throw new QdrantRefusal(400, 'Format error in JSON body: expected a JSON object');
  return body;
}

function waitParam(query: URLSearchParams): boolean | undefined {
  checkQuery(query, ['wait', 'ordering', 'timeout']);
  const wait = query.get('wait');
  if (wait === null) return undefined;
  if (wait !== 'true' && wait !== 'false') {
    throw new QdrantRefusal(
      400,
      `Query deserialize error: wait: provided string was not \`true\` or \`false\``,
    );
  }
  return wait === 'true';
}

function checkQuery(query: URLSearchParams, allowed: readonly string[]): void {
  const odd = [...query.keys()].filter((key) => !allowed.includes(key));
  if (odd.length > 0) throw new NotModelled(`query parameters ${odd.join(', ')}`);
}

function headerKey(req: IncomingMessage): string | undefined {
  const key = req.headers['api-key'];
  if (typeof key === 'string') return key;
  const bearer = req.headers.authorization;
  return bearer?.startsWith('Bearer ') === true ? bearer.slice('Bearer '.length) : undefined;
}

function refuse(status: number, error: string): Reply {
  return { status, body: { status: { error } } };
}

function send(res: ServerResponse, reply: Reply, started: bigint): void {
  const time = Number(process.hrtime.bigint() - started) / 1e9;
  if (reply.text === true) {
    res.writeHead(reply.status, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(String(reply.body));
    return;
  }
  if (reply.bare === true) {
    res.writeHead(reply.status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(reply.body));
    return;
  }
  const envelope =
    reply.status === 200
      ? ({ result: reply.body, status: 'ok', time } satisfies OkEnvelope<unknown>)
      : ({ ...(reply.body as Schemas['ErrorResponse']), time } satisfies Schemas['ErrorResponse']);
  res.writeHead(reply.status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(envelope));
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
