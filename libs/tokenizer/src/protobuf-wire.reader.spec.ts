import { describe, expect, it } from 'vitest';
import { ProtobufDecodeError, ProtobufReader, WireType } from './protobuf-wire.reader';

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
    expect(() => reader(...new Array<number>(11).fill(0x80)).readUnsigned()).toThrow(/longer than 10 bytes/);
    expect(() => reader(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f).readUnsigned()).toThrow(
      /too large/,
    );
  });

  it('reads tags, floats, strings and nested messages with absolute error offsets', () => {
    // field 1 (LEN) "ab", field 2 (I32) 1.5, field 3 (LEN) { field 1 (VARINT) 7 }
    const r = reader(0x0a, 0x02, 0x61, 0x62, 0x15, 0x00, 0x00, 0xc0, 0x3f, 0x1a, 0x02, 0x08, 0x07);
    expect(r.readTag()).toEqual({ fieldNumber: 1, wireType: WireType.LengthDelimited, offset: 0 });
    expect(r.readString()).toBe('ab');
    expect(r.readTag()).toMatchObject({ fieldNumber: 2, wireType: WireType.Fixed32 });
    expect(r.readFloat()).toBe(1.5);
    expect(r.readTag()).toMatchObject({ fieldNumber: 3 });
    const nested = r.readMessage();
    expect(nested.offset).toBe(11);
    expect(nested.readTag()).toMatchObject({ fieldNumber: 1, wireType: WireType.Varint, offset: 11 });
    expect(nested.readInt32()).toBe(7);
    expect(nested.done).toBe(true);
    expect(r.done).toBe(true);
  });

  it('says how many bytes a truncated length-delimited field lacks', () => {
    const r = reader(0x0a, 0x05, 0x61, 0x62);
    r.readTag();
    expect(() => r.readBytes()).toThrow('length-delimited field claims 5 bytes but only 2 remain');
    expect(() => reader(0x00, 0x00).readFloat()).toThrow(/float runs past the end/);
  });

  it('rejects strings that are not UTF-8, field number 0 and group wire types', () => {
    expect(() => reader(0x02, 0xc3, 0x28).readString()).toThrow(ProtobufDecodeError);
    expect(() => reader(0x02, 0xc3, 0x28).readString()).toThrow(/not valid UTF-8 \(at byte 0\)/);
    expect(() => reader(0x00).readTag()).toThrow(/invalid field number/);
    const group = reader(0x0b);
    const tag = group.readTag();
    expect(() => group.skip(tag)).toThrow(/unsupported wire type 3 for field 1/);
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
  });

  it('checks the wire type the schema expects', () => {
    const r = reader(0x08, 0x01);
    const tag = r.readTag();
    expect(() => r.expect(tag, WireType.LengthDelimited, 'Thing.name')).toThrow(
      'Thing.name (field 1) has wire type 0, expected 2 (at byte 0)',
    );
  });
});
