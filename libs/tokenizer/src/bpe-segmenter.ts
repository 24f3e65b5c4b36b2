/**
 * SentencePiece's BPE segmentation (MODEL_SPEC §5.9, bpe_model.cc): start from the initial symbols,
 * then repeatedly merge the adjacent pair whose concatenation is a piece with the highest score,
 * leftmost on ties. Symbols live in a doubly linked list over an array and candidate pairs in a
 * binary max-heap, so a prompt of n characters costs O(n log n) instead of rescanning all pairs
 * after every merge (O(n²)) or rebuilding strings (O(n³)).
 */

/** What the segmenter needs to know about a piece that pairs may merge into. */
export interface MergeablePiece {
  readonly score: number;
  /** UNUSED pieces may be formed while merging but are split again in the output (see below). */
  readonly unused: boolean;
}

/**
 * @param symbols the initial symbols (characters, or whole user-defined pieces)
 * @param frozen  per symbol: true for user-defined pieces, which never merge with neighbours
 * @param lookup  the merge target for a concatenation, or undefined when it is not a piece that
 *                merging may produce (SentencePiece excludes control, unknown and byte pieces)
 * @returns the final pieces, in order
 */
export function segmentBpe(
  symbols: readonly string[],
  frozen: readonly boolean[],
  lookup: (piece: string) => MergeablePiece | undefined,
): string[] {
  const count = symbols.length;
  if (count === 0) {
    return [];
  }
  const text = symbols.slice();
  const prev = new Int32Array(count);
  const next = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    prev[i] = i - 1;
    next[i] = i + 1 < count ? i + 1 : -1;
  }
  const queue = new PairQueue();
  // Merged UNUSED pieces and the two symbols they came from, for splitting them again.
  const unmerge = new Map<string, readonly [string, string]>();

  const consider = (left: number, right: number): void => {
    if (left < 0 || right < 0 || frozen[left] === true || frozen[right] === true) {
      return;
    }
    const leftText = text[left] ?? '';
    const rightText = text[right] ?? '';
    const merged = leftText + rightText;
    const target = lookup(merged);
    if (target === undefined) {
      return;
    }
    queue.push(left, right, target.score, merged.length);
    if (target.unused) {
      unmerge.set(merged, [leftText, rightText]);
    }
  };

  for (let i = 1; i < count; i++) {
    consider(i - 1, i);
  }

  for (let top = queue.pop(); top !== undefined; top = queue.pop()) {
    const { left, right, length } = top;
    const leftText = text[left] ?? '';
    const rightText = text[right] ?? '';
    // A queued pair is stale once either side was merged away or grew: a symbol only changes
    // by growing or by becoming empty, so comparing the total length detects both.
    if (leftText === '' || rightText === '' || leftText.length + rightText.length !== length) {
      continue;
    }
    text[left] = leftText + rightText;
    text[right] = '';
    const after = next[right] ?? -1;
    next[left] = after;
    if (after >= 0) {
      prev[after] = left;
    }
    consider(prev[left] ?? -1, left);
    consider(left, after);
  }

  const pieces: string[] = [];
  const emit = (piece: string): void => {
    const parts = unmerge.get(piece);
    if (parts === undefined) {
      pieces.push(piece);
      return;
    }
    // SentencePiece never outputs UNUSED pieces: it splits them back into what was merged.
    emit(parts[0]);
    emit(parts[1]);
  };
  // Symbol 0 is never the right side of a merge, so it always heads the list.
  for (let i = 0; i >= 0; i = next[i] ?? -1) {
    emit(text[i] ?? '');
  }
  return pieces;
}

interface QueuedPair {
  readonly left: number;
  readonly right: number;
  readonly score: number;
  /** Total length of the two symbols when the pair was queued (the staleness check). */
  readonly length: number;
}

/** Binary max-heap of candidate merges: higher score first, then the leftmost pair. */
class PairQueue {
  private readonly heap: QueuedPair[] = [];

  push(left: number, right: number, score: number, length: number): void {
    const heap = this.heap;
    heap.push({ left, right, score, length });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const up = heap[parent];
      const item = heap[i];
      if (up === undefined || item === undefined || !before(item, up)) {
        break;
      }
      heap[parent] = item;
      heap[i] = up;
      i = parent;
    }
  }

  pop(): QueuedPair | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) {
      return top;
    }
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < heap.length && before(heap[l] as QueuedPair, heap[best] as QueuedPair)) best = l;
      if (r < heap.length && before(heap[r] as QueuedPair, heap[best] as QueuedPair)) best = r;
      if (best === i) {
        return top;
      }
      const moved = heap[best] as QueuedPair;
      heap[best] = heap[i] as QueuedPair;
      heap[i] = moved;
      i = best;
    }
  }
}

/** The merge order of bpe_model.cc: higher score wins; on equal scores the lower left index. */
function before(a: QueuedPair, b: QueuedPair): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}
