import { parentPort } from 'node:worker_threads';
import { TopK } from './exact-top-k';
import { flattenHits, type ScanReply, type ScanRequest } from './scan-pool';

/**
 * Worker thread of the ExactScanPool: scans its row range of the shared rows for every query
 * and answers with each query's best-first hits. One request at a time, in order.
 */
const port = parentPort;
if (port === null) throw new Error('scan.worker runs as a worker thread of ExactScanPool');

port.on('message', (request: ScanRequest) => {
  let reply: ScanReply;
  try {
    const { dimension: d, first, rows } = request;
    const vectors = new Float32Array(request.vectors, request.vectorsOffset + first * d * 4, rows * d);
    const ids = new Float64Array(request.ids, request.idsOffset + first * 8, rows);
    const top = new TopK(request.queries, d, request.k);
    top.offer(vectors, ids, rows, request.rowOffset + first);
    reply = { id: request.id, hits: top.result().map(flattenHits) };
  } catch (error) {
    reply = { id: request.id, error: error instanceof Error ? error.message : String(error) };
  }
  port.postMessage(reply);
});
