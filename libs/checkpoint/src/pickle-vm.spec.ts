import { describe, expect, it } from 'vitest';
import { CheckpointFormatError } from './checkpoint.error';
import { PickleGlobal, PickleObject, unpickle } from './pickle-vm';
import { picklePy } from './testing-fixtures';

const load = (bytes: Uint8Array | number[] | string): unknown =>
  unpickle(typeof bytes === 'string' ? new TextEncoder().encode(bytes) : Uint8Array.from(bytes), {
    source: 'test.pkl',
  });

describe('unpickle', () => {
  for (const protocol of [2, 4] as const) {
    it(`reads containers and scalars (protocol ${protocol})`, () => {
      const bytes = picklePy(
        {
          dict: [
            ['ints', [0, 255, 256, 65535, 65536, -1, -(2 ** 31), 2 ** 31, 2 ** 40, -(2 ** 40)]],
            ['big', 2n ** 70n],
            ['negbig', -(2n ** 70n) + 1n],
            ['float', { float: -0.125 }],
            ['text', 'héllo ✓'],
            ['bytes', new Uint8Array([0, 128, 255])],
            ['tuple', { tuple: [1, { tuple: [] }, { tuple: ['a', 'b'] }, { tuple: [1, 2, 3, 4] }] }],
            ['flags', [true, false, null]],
            [
              'ordered',
              {
                dict: [
                  ['z', 1],
                  ['a', 2],
                ],
                ordered: true,
              },
            ],
          ],
        },
        protocol,
      );
      const root = load(bytes) as Map<string, unknown>;
      expect(root).toBeInstanceOf(Map);
      expect(root.get('ints')).toEqual([
        0,
        255,
        256,
        65535,
        65536,
        -1,
        -(2 ** 31),
        2 ** 31,
        2 ** 40,
        -(2 ** 40),
      ]);
      expect(root.get('big')).toBe(2n ** 70n);
      expect(root.get('negbig')).toBe(-(2n ** 70n) + 1n);
      expect(root.get('float')).toBe(-0.125);
      expect(root.get('text')).toBe('héllo ✓');
      expect(root.get('bytes')).toEqual(new Uint8Array([0, 128, 255]));
      const tuple = root.get('tuple') as unknown[];
      expect(tuple).toEqual([1, [], ['a', 'b'], [1, 2, 3, 4]]);
      expect(Object.isFrozen(tuple)).toBe(true);
      expect(root.get('flags')).toEqual([true, false, null]);
      expect([...(root.get('ordered') as Map<string, number>).keys()]).toEqual(['z', 'a']);
    });
  }

  it('keeps unknown classes as inert placeholders (argparse.Namespace)', () => {
    const root = load(
      picklePy({
        object: { module: 'argparse', name: 'Namespace', state: { dict: [['lr', { float: 0.001 }]] } },
      }),
    );
    expect(root).toBeInstanceOf(PickleObject);
    const ns = root as PickleObject;
    expect(ns.type).toEqual(new PickleGlobal('argparse', 'Namespace'));
    expect((ns.state as Map<string, number>).get('lr')).toBe(0.001);
  });

  it('reads protocol-0 text opcodes', () => {
    const text = "(lp0\nI1\naI01\naL-5L\naF2.5\naS'a\\'b'\naVx\\u00e9\nag0\na.";
    const list = load(text) as unknown[];
    expect(list.slice(0, 6)).toEqual([1, true, -5, 2.5, "a'b", 'xé']);
    expect(list[6]).toBe(list);
  });

  it('unknown callables called through REDUCE stay placeholders', () => {
    // cfoo\nbar\n(K\x01tR.
    const value = load([
      0x80,
      0x02,
      ...new TextEncoder().encode('cfoo\nbar\n'),
      0x28,
      0x4b,
      0x01,
      0x74,
      0x52,
      0x2e,
    ]);
    expect(value).toBeInstanceOf(PickleObject);
    expect((value as PickleObject).args).toEqual([1]);
  });

  it.each([
    ['truncated data', [0x80, 0x02, 0x58, 0x05, 0x00, 0x00, 0x00, 0x61], /ends after 8 bytes.*truncated/],
    ['no STOP', [0x80, 0x02, 0x4e], /ends after 3 bytes/],
    ['unknown opcode', [0x80, 0x02, 0xff], /unknown pickle opcode 0xff/],
    ['memo miss', [0x80, 0x02, 0x68, 0x07, 0x2e], /memo entry 7 was never stored/],
    ['stack underflow', [0x80, 0x02, 0x86, 0x2e], /stack underflow/],
    ['newer protocol', [0x80, 0x06, 0x4e, 0x2e], /unsupported pickle protocol 6/],
    ['persistent id without a resolver', [0x80, 0x02, 0x4e, 0x51, 0x2e], /persistent id/],
    ['extra values at STOP', [0x80, 0x02, 0x4e, 0x4e, 0x2e], /STOP with 2 values/],
  ])('fails clearly on %s', (_label, bytes, message) => {
    let error: unknown;
    try {
      load(bytes);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CheckpointFormatError);
    expect((error as Error).message).toMatch(/^test\.pkl: /);
    expect((error as Error).message).toMatch(message);
  });
});
