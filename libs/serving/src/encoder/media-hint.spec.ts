import { describe, expect, it } from 'vitest';
import { inputFileName } from './media-hint';

const bytes = (text: string): Uint8Array => Uint8Array.from(Buffer.from(text, 'latin1'));

describe('inputFileName', () => {
  it('names point clouds by their signature, whatever the hint says', () => {
    expect(inputFileName('point', 'cloud.npy', bytes('PK\x03\x04rest'))).toBe('cloud.pt');
    expect(inputFileName('point', '', bytes('\x93NUMPY\x01\x00'))).toBe('cloud.npy');
    expect(inputFileName('point', 'model/obj', bytes('ply\nformat ascii 1.0\n'))).toBe('cloud.ply');
    expect(inputFileName('point', '', bytes('# .PCD v0.7\n'))).toBe('cloud.pcd');
  });

  it('follows the hint for text formats, else reads v-lines as OBJ and anything else as XYZ', () => {
    expect(inputFileName('point', 'scan.pts', bytes('1 2 3\n'))).toBe('cloud.pts');
    expect(inputFileName('point', 'model/obj', bytes('1 2 3\n'))).toBe('cloud.obj');
    expect(inputFileName('point', '', bytes('# comment\nv 1 2 3\n'))).toBe('cloud.obj');
    expect(inputFileName('point', 'text/plain', bytes('1 2 3\n'))).toBe('cloud.xyz');
  });

  it('leaves unknown binary point data to the loader to refuse', () => {
    expect(inputFileName('point', '', Uint8Array.of(1, 0, 2))).toBe('cloud.bin');
  });

  it('passes a file-name hint through for other modalities and ignores MIME types', () => {
    expect(inputFileName('image', 'photos/girl.jpg', bytes('x'))).toBe('girl.jpg');
    expect(inputFileName('image', 'image/png', bytes('x'))).toBeUndefined();
    expect(inputFileName('audio', '', bytes('x'))).toBeUndefined();
  });
});
