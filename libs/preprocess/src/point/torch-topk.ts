/**
 * `torch.topk(values, k, largest=False, sorted=False)` on one CPU row, indices in torch's order.
 *
 * torch 1.13 (aten TopKImpl.h) copies the row into (value, index) pairs and calls libstdc++'s
 * `std::partial_sort` when `k · 64 ≤ n`, else `std::nth_element` at `k − 1`; the comparator looks at
 * values only (NaN counts as largest). Which of several equal values make the cut, and the order of
 * the k results, are therefore those of the GCC algorithms, reproduced step by step here. Checked
 * against torch itself on rows full of ties (tools/golden/point_grouping.py).
 */
export class TorchSmallestK {
  private readonly values: Float64Array;
  private readonly indices: Int32Array;

  constructor(private readonly capacity: number) {
    this.values = new Float64Array(capacity);
    this.indices = new Int32Array(capacity);
  }

  /** The k smallest of `row[0..n)` as torch returns them; written to `out[offset..offset + k)`. */
  select(row: ArrayLike<number>, n: number, k: number, out: Int32Array, offset: number): void {
    if (n > this.capacity || k < 1 || k > n) throw new RangeError(`cannot take ${k} of ${n} values`);
    const v = this.values;
    const ix = this.indices;
    for (let j = 0; j < n; j++) {
      v[j] = row[j] ?? 0;
      ix[j] = j;
    }
    if (k * 64 <= n) {
      this.heapSelect(0, k, n);
      for (let last = k - 1; last > 0; last--) this.popHeap(0, last, last);
    } else {
      this.nthElement(0, k - 1, n);
    }
    for (let j = 0; j < k; j++) out[offset + j] = ix[j] ?? 0;
  }

  /** torch's comparator: `x < y`, with NaN after every number. */
  private less(a: number, b: number): boolean {
    const x = this.values[a] ?? 0;
    const y = this.values[b] ?? 0;
    return x < y || (y !== y && x === x);
  }

  private lessValue(x: number, b: number): boolean {
    const y = this.values[b] ?? 0;
    return x < y || (y !== y && x === x);
  }

  private valueLess(a: number, y: number): boolean {
    const x = this.values[a] ?? 0;
    return x < y || (y !== y && x === x);
  }

  private move(to: number, from: number): void {
    this.values[to] = this.values[from] ?? 0;
    this.indices[to] = this.indices[from] ?? 0;
  }

  private swap(a: number, b: number): void {
    const v = this.values[a] ?? 0;
    const i = this.indices[a] ?? 0;
    this.move(a, b);
    this.values[b] = v;
    this.indices[b] = i;
  }

  /** `std::__adjust_heap`: sift the hole down to a leaf, then push `value` up (max-heap). */
  private adjustHeap(first: number, holeIndex: number, len: number, value: number, index: number): void {
    const top = holeIndex;
    let hole = holeIndex;
    let second = holeIndex;
    while (second < Math.trunc((len - 1) / 2)) {
      second = 2 * (second + 1);
      if (this.less(first + second, first + second - 1)) second--;
      this.move(first + hole, first + second);
      hole = second;
    }
    if ((len & 1) === 0 && second === Math.trunc((len - 2) / 2)) {
      second = 2 * (second + 1);
      this.move(first + hole, first + second - 1);
      hole = second - 1;
    }
    let parent = Math.trunc((hole - 1) / 2);
    while (hole > top && this.valueLess(first + parent, value)) {
      this.move(first + hole, first + parent);
      hole = parent;
      parent = Math.trunc((hole - 1) / 2);
    }
    this.values[first + hole] = value;
    this.indices[first + hole] = index;
  }

  private makeHeap(first: number, last: number): void {
    const len = last - first;
    if (len < 2) return;
    for (let parent = Math.trunc((len - 2) / 2); ; parent--) {
      this.adjustHeap(
        first,
        parent,
        len,
        this.values[first + parent] ?? 0,
        this.indices[first + parent] ?? 0,
      );
      if (parent === 0) return;
    }
  }

  /** `std::__pop_heap(first, last, result)`: the top goes to `result`, `result`'s pair into the heap. */
  private popHeap(first: number, last: number, result: number): void {
    const value = this.values[result] ?? 0;
    const index = this.indices[result] ?? 0;
    this.move(result, first);
    this.adjustHeap(first, 0, last - first, value, index);
  }

  private heapSelect(first: number, middle: number, last: number): void {
    this.makeHeap(first, middle);
    for (let i = middle; i < last; i++) if (this.less(i, first)) this.popHeap(first, middle, i);
  }

  /** `std::__introselect` with median-of-three pivots and insertion sort below four elements. */
  private nthElement(start: number, nth: number, end: number): void {
    let first = start;
    let last = end;
    if (first === last || nth === last) return;
    let depth = 2 * (31 - Math.clz32(last - first));
    while (last - first > 3) {
      if (depth === 0) {
        this.heapSelect(first, nth + 1, last);
        this.swap(first, nth);
        return;
      }
      depth--;
      const mid = first + Math.trunc((last - first) / 2);
      this.medianToFirst(first, first + 1, mid, last - 1);
      const cut = this.unguardedPartition(first + 1, last, first);
      if (cut <= nth) first = cut;
      else last = cut;
    }
    this.insertionSort(first, last);
  }

  private medianToFirst(result: number, a: number, b: number, c: number): void {
    if (this.less(a, b)) {
      if (this.less(b, c)) this.swap(result, b);
      else if (this.less(a, c)) this.swap(result, c);
      else this.swap(result, a);
    } else if (this.less(a, c)) this.swap(result, a);
    else if (this.less(b, c)) this.swap(result, c);
    else this.swap(result, b);
  }

  private unguardedPartition(start: number, end: number, pivot: number): number {
    let first = start;
    let last = end;
    for (;;) {
      while (this.less(first, pivot)) first++;
      last--;
      while (this.less(pivot, last)) last--;
      if (!(first < last)) return first;
      this.swap(first, last);
      first++;
    }
  }

  private insertionSort(first: number, last: number): void {
    if (first === last) return;
    for (let i = first + 1; i < last; i++) {
      const value = this.values[i] ?? 0;
      const index = this.indices[i] ?? 0;
      let hole = i;
      if (this.lessValue(value, first)) {
        for (; hole > first; hole--) this.move(hole, hole - 1);
      } else {
        for (; this.lessValue(value, hole - 1); hole--) this.move(hole, hole - 1);
      }
      this.values[hole] = value;
      this.indices[hole] = index;
    }
  }
}
