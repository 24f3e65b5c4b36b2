import { describe, expect, it } from 'vitest';
import { WireType } from '@bufbuild/protobuf/wire';
import { ProtobufDecodeError, ProtobufReader } from './protobuf-wire.reader';

const reader = (...bytes: number[]): ProtobufReader => new ProtobufReader(Uint8Array.from(bytes));

describe('ProtobufReader', () => {
  it('reads varints of every width, including sign-extended negative int32', () => {
    expect(reader(0x00).readUnsigned()).toBe(0);
    expect(reader(0x96, 0x01).readUnsigned()).toBe(150);
    expect(reader(0xff, 0xff, 0xff, 0xff, 0x0f).readUnsigned()).toBe(2 ** 32 - 1);
    expect(reader(0x80, 0x80, 0x80, 0x80, 0x10).readUnsigned()).toBe(2 ** 32);
    // int32 −1 is written as ten bytes (two's complement over 64 bits): LLaMA's pad_id.
    const minusOne = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    expect(reader(...minusOne).readInt32()).toBe(-1);
    expect(reader(0x80, 0x80, 0x80, 0x80, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x01).readInt32()).toBe(-(2 ** 31));
    expect(reader(0xac, 0x02).readInt32()).toBe(300);
  });

  it('rejects a varint that is cut off or longer than ten bytes', () => {
    expect(() => reader(0x96).readUnsigned()).toThrow(/varint runs past the end/);
    expect(() => reader(0x96).readInt32()).toThrow(
      'varint runs past the end of the message (truncated file?) (at byte 0)',
    );
    expect(() => reader(...new Array<number>(11).fill(0x80)).readUnsigned()).toThrow(
      /^malformed varint: .* \(at byte 0\)$/,
    );
    expect(() => reader(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f).readUnsigned()).toThrow(
      /too large/,
    );
  });

  it('reads tags, floats, strings and nested messages with absolute error offsets', () => {
    // field 1 (LEN) "ab", field 2 (I32) 1.5, field 3 (LEN) { field 1 (VARINT) 7 }, field 4 true
    const r = reader(
      0x0a,
      0x02,
      0x61,
      0x62,
      0x15,
      0x00,
      0x00,
      0xc0,
      0x3f,
      0x1a,
      0x02,
      0x08,
      0x07,
      0x20,
      0x81,
      0x00,
    );
    expect(r.readTag()).toEqual({ fieldNumber: 1, wireType: WireType.LengthDelimited, offset: 0 });
    expect(r.readString()).toBe('ab');
    expect(r.readTag()).toMatchObject({ fieldNumber: 2, wireType: WireType.Bit32 });
    expect(r.readFloat()).toBe(1.5);
    expect(r.readTag()).toMatchObject({ fieldNumber: 3 });
    const nested = r.readMessage();
    expect(nested.offset).toBe(11);
    expect(nested.readTag()).toMatchObject({ fieldNumber: 1, wireType: WireType.Varint, offset: 11 });
    expect(nested.readInt32()).toBe(7);
    expect(nested.done).toBe(true);
    expect(r.readTag()).toMatchObject({ fieldNumber: 4, offset: 13 });
    expect(r.readBool()).toBe(true);
    expect(r.done).toBe(true);
  });

  it('says how many bytes a truncated length-delimited field lacks', () => {
    const r = reader(0x0a, 0x05, 0x61, 0x62);
    r.readTag();
    expect(() => r.readBytes()).toThrow('length-delimited field claims 5 bytes but only 2 remain');
    expect(() => reader(0x00, 0x00).readFloat()).toThrow(/float runs past the end/);
    // A length of 2^32 + 1: BinaryReader alone would keep the low 32 bits and read one byte.
    expect(() => reader(0x81, 0x80, 0x80, 0x80, 0x10, 0x61).readBytes()).toThrow(
      'length-delimited field claims 4294967297 bytes but only 1 remain',
    );
  });

  it('rejects strings that are not UTF-8, field number 0, wire type 7 and stray group ends', () => {
    expect(() => reader(0x02, 0xc3, 0x28).readString()).toThrow(ProtobufDecodeError);
    expect(() => reader(0x02, 0xc3, 0x28).readString()).toThrow(/not valid UTF-8 \(at byte 0\)/);
    expect(() => reader(0x00).readTag()).toThrow(/^malformed tag: .*field no 0.* \(at byte 0\)$/);
    expect(() => reader(0x0f).readTag()).toThrow(/^malformed tag: .*wire type 7/);
    // A tag wider than 32 bits cannot name a field (field numbers have 29 bits).
    expect(() => reader(0x88, 0x80, 0x80, 0x80, 0x10).readTag()).toThrow(/^malformed tag/);
    const endGroup = reader(0x0c);
    const tag = endGroup.readTag();
    expect(() => endGroup.skip(tag)).toThrow(/^malformed field 1: .* \(at byte 0\)$/);
  });

  it('skips unknown fields of every supported wire type', () => {
    const r = reader(
      0x08,
      0x96,
      0x01,
      0x11,
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      0x1a,
      0x01,
      0x00,
      0x25,
      1,
      2,
      3,
      4,
      0x28,
      0x05,
    );
    for (let i = 0; i < 4; i++) {
      r.skip(r.readTag());
    }
    expect(r.readTag().fieldNumber).toBe(5);
    expect(r.readInt32()).toBe(5);
    expect(r.done).toBe(true);
    // A group (field 6): skipped up to its matching end, nested fields included.
    const g = reader(0x33, 0x08, 0x01, 0x12, 0x01, 0x00, 0x34, 0x38, 0x09);
    g.skip(g.readTag());
    expect(g.readTag()).toMatchObject({ fieldNumber: 7, offset: 7 });
    expect(g.readInt32()).toBe(9);
    expect(g.done).toBe(true);
  });

  it('says where a skipped field runs past the end', () => {
    const r = reader(0x08, 0x96);
    const tag = r.readTag();
    expect(() => r.skip(tag)).toThrow(
      'field 1 runs past the end of the message (truncated file?) (at byte 1)',
    );
    const fixed = reader(0x11, 1, 2, 3);
    expect(() => fixed.skip(fixed.readTag())).toThrow(/^field 2 runs past the end/);
    const len = reader(0x1a, 0x05, 0x00);
    expect(() => len.skip(len.readTag())).toThrow('length-delimited field claims 5 bytes but only 1 remain');
  });

  it('checks the wire type the schema expects', () => {
    const r = reader(0x08, 0x01);
    const tag = r.readTag();
    expect(() => r.expect(tag, WireType.LengthDelimited, 'Thing.name')).toThrow(
      'Thing.name (field 1) has wire type 0, expected 2 (at byte 0)',
    );
  });
});
