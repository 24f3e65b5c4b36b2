import { describe, expect, it } from 'vitest';

import { presentationPtsFromPackets, type VideoPacket } from './ffmpeg.adapter';

const packet = (pts: bigint | undefined, flags = '__'): VideoPacket => ({ pts, flags });

describe('presentationPtsFromPackets', () => {
  it('sorts decoding-order pts (B-frames) into presentation order', () => {
    const packets = [packet(0n, 'K_'), packet(3072n), packet(1024n), packet(2048n), packet(4096n, 'K__')];
    expect(presentationPtsFromPackets(packets)).toEqual([0n, 1024n, 2048n, 3072n, 4096n]);
    expect(presentationPtsFromPackets([])).toEqual([]);
  });

  it('leaves it to the decoder when the packets cannot vouch for the frames', () => {
    // A missing pts: the frame would have none either, which only decoding settles.
    expect(presentationPtsFromPackets([packet(0n, 'K_'), packet(undefined)])).toBeUndefined();
    // Two packets with one pts: the official loader keeps the last frame decoded with it.
    expect(presentationPtsFromPackets([packet(0n, 'K_'), packet(1n), packet(1n)])).toBeUndefined();
    // Discard (edit list) and corrupt packets may decode to no frame.
    expect(presentationPtsFromPackets([packet(-1024n, 'KD_'), packet(0n)])).toBeUndefined();
    expect(presentationPtsFromPackets([packet(0n, 'K_C'), packet(1024n)])).toBeUndefined();
    // A pts that a filter expression (doubles) cannot match exactly.
    expect(presentationPtsFromPackets([packet(2n ** 53n + 1n, 'K_')])).toBeUndefined();
  });
});
