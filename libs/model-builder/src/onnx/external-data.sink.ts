import { closeSync, openSync, writeSync } from 'node:fs';
import type { InitializerData, InitializerSink } from './onnx-graph';

/**
 * Writes initializer bytes to an ONNX external-data file as they are produced, so a model far
 * larger than 2 GB (the protobuf limit) never has its weights in memory all at once. Offsets are
 * aligned to 4 KiB so onnxruntime can memory-map each tensor.
 */
export class ExternalDataSink implements InitializerSink {
  private readonly fd: number;
  private offset = 0;
  private closed = false;

  constructor(
    path: string,
    private readonly location: string,
    private readonly alignment = 4096,
  ) {
    this.fd = openSync(path, 'w');
  }

  get bytesWritten(): number {
    return this.offset;
  }

  store(_name: string, bytes: Uint8Array): InitializerData {
    if (this.closed) throw new Error('external data file already closed');
    const pad = (this.alignment - (this.offset % this.alignment)) % this.alignment;
    if (pad > 0) {
      writeSync(this.fd, new Uint8Array(pad));
      this.offset += pad;
    }
    const at = this.offset;
    let written = 0;
    while (written < bytes.byteLength) {
      written += writeSync(this.fd, bytes, written, bytes.byteLength - written);
    }
    this.offset += bytes.byteLength;
    return { kind: 'external', location: this.location, offset: at, length: bytes.byteLength };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}
