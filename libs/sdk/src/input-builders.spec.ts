import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commonV1 } from '@imagebind-llm/proto';
import { errorOf } from '@imagebind-llm/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { ImageBindError } from './image-bind-error';
import { audio, guessMediaType, image, pointCloud, text, uri, video } from './input-builders';

const dir = mkdtempSync(join(tmpdir(), 'sdk-inputs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, bytes: number[] = [1, 2, 3]): string {
  const path = join(dir, name);
  writeFileSync(path, Buffer.from(bytes));
  return path;
}

describe('input builders', () => {
  it('read files and guess the media type from the extension', () => {
    const photo = image(file('cat.JPG', [0xff, 0xd8, 0xff]), 0.5);
    expect(photo).toEqual({
      modality: commonV1.Modality.MODALITY_IMAGE,
      weight: 0.5,
      source: { $case: 'content', value: Buffer.from([0xff, 0xd8, 0xff]) },
      mediaType: 'image/jpeg',
    });
    expect(audio(file('bgm.wav')).mediaType).toBe('audio/wav');
    expect(audio(file('song.mp3')).modality).toBe(commonV1.Modality.MODALITY_AUDIO);
    expect(video(file('clip.mp4')).mediaType).toBe('video/mp4');
    expect(video(file('clip.mov')).modality).toBe(commonV1.Modality.MODALITY_VIDEO);
  });

  it('send the file name as the hint for point clouds and unknown extensions', () => {
    const cloud = pointCloud(file('airplane.pt'));
    expect(cloud.modality).toBe(commonV1.Modality.MODALITY_POINT_CLOUD);
    expect(cloud.mediaType).toBe('airplane.pt');
    expect(pointCloud(Buffer.from([1]), 1, 'scan.ply').mediaType).toBe('scan.ply');
    expect(guessMediaType('/data/odd.xyz123')).toBe('odd.xyz123');
    expect(guessMediaType('photo.webp')).toBe('image/webp');
  });

  it('wrap bytes without a weight or media type unless given', () => {
    const bytes = new Uint8Array([9, 8, 7, 6]).subarray(1, 3);
    const input = image(bytes);
    expect(input.weight).toBeUndefined();
    expect(input.mediaType).toBe('');
    expect(input.source).toEqual({ $case: 'content', value: Buffer.from([8, 7]) });
    expect(audio(Buffer.from([1]), 2, 'audio/flac').mediaType).toBe('audio/flac');
  });

  it('build text and uri inputs', () => {
    expect(text('a dog', 2)).toEqual({
      modality: commonV1.Modality.MODALITY_TEXT,
      weight: 2,
      source: { $case: 'text', value: 'a dog' },
      mediaType: '',
    });
    expect(uri('point-cloud', 'https://example.com/a.ply')).toMatchObject({
      modality: commonV1.Modality.MODALITY_POINT_CLOUD,
      source: { $case: 'uri', value: 'https://example.com/a.ply' },
    });
    expect(uri(commonV1.Modality.MODALITY_AUDIO, 'clips/a.wav', 0.3).modality).toBe(
      commonV1.Modality.MODALITY_AUDIO,
    );
  });

  it('say what to fix for a missing file, a URL, bad weights and empty input', () => {
    const missing = errorOf(ImageBindError, () => image(join(dir, 'nope.png')));
    expect(missing).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'content' });
    expect(missing.message).toContain('ENOENT');
    expect(missing.message).toContain('nope.png');

    const url = errorOf(ImageBindError, () => image('https://example.com/cat.jpg'));
    expect(url.message).toContain("uri('image', ...)");

    expect(errorOf(ImageBindError, () => audio(Buffer.from([1]), 0)).field).toBe('weight');
    expect(errorOf(ImageBindError, () => video(Buffer.from([1]), Number.NaN)).field).toBe('weight');
    expect(errorOf(ImageBindError, () => image(new Uint8Array(0))).message).toContain('empty');
    expect(errorOf(ImageBindError, () => image(file('empty.png', []))).message).toContain('is empty');
    expect(errorOf(ImageBindError, () => text('   ')).field).toBe('text');
    expect(errorOf(ImageBindError, () => uri('smell' as 'image', 'x')).message).toContain('point-cloud');
    expect(errorOf(ImageBindError, () => image(42 as unknown as string)).message).toContain(
      'Buffer or Uint8Array',
    );
  });
});
