import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  f16BitsToF32,
  f32BitsToBf16Bits,
  f32BitsToF16Bits,
  bf16BitsToF32,
  float32Bits,
  float32FromBits,
} from '../src/io/float-bits.ts';
import {
  SafetensorsFile,
  parseSafetensors,
  readSafetensorsHeader,
  serializeSafetensors,
  writeSafetensors,
  type TensorToWrite,
} from '../src/io/safetensors.ts';
import { atomicWriteFile, atomicWriteStream } from '../src/io/atomic.ts';

const dir = mkdtempSync(join(tmpdir(), 'relora-io-st-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const toF16 = (x: number): number => f32BitsToF16Bits(float32Bits(x));
const toBf16 = (x: number): number => f32BitsToBf16Bits(float32Bits(x));
const isF16NaN = (h: number): boolean => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;

/** Builds a file by hand: header length field, header text, data bytes. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), lengthField?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

let fileCounter = 0;
function put(bytes: Uint8Array, base = 'hostile'): string {
  fileCounter += 1;
  const path = join(dir, `${base}-${fileCounter}.safetensors`);
  writeFileSync(path, bytes);
  return path;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

// ---------------------------------------------------------------------------------------------
// Bit patterns, checked against hand-computed IEEE encodings

test('float16 encodes hand-computed bit patterns', () => {
  assert.equal(toF16(1.0), 0x3c00);
  assert.equal(toF16(-2.0), 0xc000);
  assert.equal(toF16(0.5), 0x3800);
  assert.equal(toF16(0.1), 0x2e66); // 0.1 = 1.6 * 2^-4; 0.6 * 1024 = 614.4 -> 614 = 0x266
  assert.equal(toF16(65504), 0x7bff); // largest finite
  assert.equal(toF16(65519), 0x7bff); // below the midpoint to 65536
  assert.equal(toF16(65520), 0x7c00); // the midpoint: ties to even (0x7bff is odd) -> Inf
  assert.equal(toF16(1e6), 0x7c00);
  assert.equal(toF16(-1e6), 0xfc00);
  assert.equal(toF16(0), 0x0000);
  assert.equal(toF16(-0), 0x8000);
  assert.equal(toF16(Infinity), 0x7c00);
  assert.equal(toF16(-Infinity), 0xfc00);
  assert.ok(isF16NaN(toF16(NaN)));
  assert.ok(isF16NaN(f32BitsToF16Bits(0x7f800001)), 'a NaN with only low payload bits stays NaN');
  // Ties to even in the normal range: 1 + 2^-11 sits between 0x3c00 (even) and 0x3c01.
  assert.equal(toF16(1 + 2 ** -11), 0x3c00);
  assert.equal(toF16(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(toF16(1 + 2 ** -11 + 2 ** -20), 0x3c01); // just above the tie rounds up
  // Subnormals: step 2^-24.
  assert.equal(toF16(2 ** -24), 0x0001);
  assert.equal(toF16(2 ** -25), 0x0000); // tie between 0 and 1 -> even 0
  assert.equal(toF16(1.5 * 2 ** -25), 0x0001);
  assert.equal(toF16(3 * 2 ** -25), 0x0002); // tie between 1 and 2 -> even 2
  assert.equal(toF16(1023 * 2 ** -24), 0x03ff); // largest subnormal
  assert.equal(toF16(2 ** -14), 0x0400); // smallest normal
  assert.equal(toF16(2 ** -14 - 2 ** -26), 0x0400); // rounds up across the subnormal boundary
  assert.equal(toF16(-(2 ** -24)), 0x8001);
  assert.equal(toF16(2 ** -30), 0x0000);
  assert.equal(f32BitsToF16Bits(0x00000001), 0x0000); // float32 subnormal
});

test('float16 decodes hand-computed bit patterns', () => {
  assert.equal(f16BitsToF32(0x3c00), 1);
  assert.equal(f16BitsToF32(0xc000), -2);
  assert.equal(f16BitsToF32(0x7bff), 65504);
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0x03ff), 1023 * 2 ** -24);
  assert.equal(f16BitsToF32(0x3555), 0.333251953125);
  assert.equal(f16BitsToF32(0x7c00), Infinity);
  assert.equal(f16BitsToF32(0xfc00), -Infinity);
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  assert.ok(Object.is(f16BitsToF32(0x8000), -0));
});

test('float16: every finite value round-trips and every midpoint rounds to the even neighbour', () => {
  for (let h = 0; h < 0x7c00; h++) {
    for (const sign of [0, 0x8000]) {
      const v = f16BitsToF32(h | sign);
      assert.equal(toF16(v), h | sign, `value ${v}`);
    }
    if (h + 1 < 0x7c00) {
      // The midpoint of two neighbours is exact in float32 (11-bit significands plus one bit).
      const mid = (f16BitsToF32(h) + f16BitsToF32(h + 1)) / 2;
      assert.equal(float32FromBits(float32Bits(mid)), mid);
      assert.equal(toF16(mid), h % 2 === 0 ? h : h + 1, `midpoint after 0x${h.toString(16)}`);
    }
  }
});

test('bfloat16 encodes and decodes hand-computed bit patterns', () => {
  assert.equal(toBf16(1.0), 0x3f80);
  assert.equal(toBf16(-2.0), 0xc000);
  assert.equal(toBf16(3.0), 0x4040);
  assert.equal(toBf16(Math.PI), 0x4049); // float32 pi = 0x40490fdb, dropped bits 0x0fdb < 0x8000
  assert.equal(toBf16(1 + 2 ** -8), 0x3f80); // tie -> even
  assert.equal(toBf16(1 + 3 * 2 ** -8), 0x3f82); // tie -> even (0x3f81 is odd)
  assert.equal(toBf16(65504), 0x4780); // 65504 = 0x477fe000 rounds up to 65536
  assert.equal(f32BitsToBf16Bits(0x7f7fffff), 0x7f80); // float32 max rounds to Inf
  assert.equal(f32BitsToBf16Bits(0x7f7f0000), 0x7f7f);
  assert.equal(toBf16(Infinity), 0x7f80);
  assert.equal(toBf16(-Infinity), 0xff80);
  assert.equal(toBf16(-0), 0x8000);
  assert.equal(f32BitsToBf16Bits(0x00008000), 0x0000); // subnormal tie -> even 0
  assert.equal(f32BitsToBf16Bits(0x00018000), 0x0002); // subnormal tie -> even 2
  const nan = f32BitsToBf16Bits(0x7f800001); // payload only in bits a plain shift would drop
  assert.equal(nan & 0x7f80, 0x7f80);
  assert.notEqual(nan & 0x7f, 0);
  assert.equal(bf16BitsToF32(0x3f80), 1);
  assert.equal(bf16BitsToF32(0x4049), 3.140625);
  assert.equal(bf16BitsToF32(0xff80), -Infinity);
  assert.ok(Number.isNaN(bf16BitsToF32(0x7fc0)));
});

// ---------------------------------------------------------------------------------------------
// Round trips through files

test('write then read round-trips F32, I32, F16, BF16 with the expected bits', async () => {
  const f32 = new Float32Array([1.5, -2.25, 3.4028234663852886e38, 1e-45, -0, NaN, Infinity]);
  const i32 = new Int32Array([0, -1, 2147483647, -2147483648, 42, 7]);
  const halfIn = new Float32Array([1.0, 65504, 65520, 2 ** -24, 2 ** -25, 1 + 2 ** -11, NaN, -Infinity, 0.1]);
  const halfOut = [1.0, 65504, Infinity, 2 ** -24, 0, 1, NaN, -Infinity, f16BitsToF32(0x2e66)];
  const bfIn = new Float32Array([1.0, Math.PI, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -Infinity, NaN]);
  const bfOut = [1.0, 3.140625, 1, 1 + 2 ** -6, -Infinity, NaN];
  const path = join(dir, 'roundtrip.safetensors');
  await writeSafetensors(
    path,
    {
      'model.f32': { dtype: 'F32', shape: [7], data: f32 },
      'model.i32': { dtype: 'I32', shape: [2, 3], data: i32 },
      'model.f16': { dtype: 'F16', shape: [3, 3], data: halfIn },
      'model.bf16': { dtype: 'BF16', shape: [6, 1], data: bfIn },
      'model.scalar': { dtype: 'F32', shape: [], data: new Float32Array([7]) },
      'model.empty': { dtype: 'F16', shape: [0, 4], data: new Float32Array(0) },
    },
    { format: 'pt', step: '12' },
  );

  const raw = readFileSync(path);
  const f16Bytes = new Uint16Array(9);
  const f = await SafetensorsFile.open(path);
  try {
    assert.deepEqual(f.metadata, Object.assign(Object.create(null), { format: 'pt', step: '12' }));
    assert.deepEqual(new Set(f.names()), new Set(['model.f32', 'model.i32', 'model.f16', 'model.bf16', 'model.scalar', 'model.empty']));
    assert.deepEqual(f.info('model.i32').shape, [2, 3]);
    assert.equal(f.info('model.f16').dtype, 'F16');
    assert.deepEqual(bytesOf(f.readFloat32('model.f32')), bytesOf(f32)); // bit-exact, NaN and -0 included
    assert.deepEqual(f.readInt32('model.i32'), i32);
    assert.deepEqual(Array.from(f.readFloat32('model.f16')), halfOut);
    assert.deepEqual(Array.from(f.readFloat32('model.bf16')), bfOut);
    assert.deepEqual(Array.from(f.readFloat32('model.scalar')), [7]);
    assert.equal(f.readFloat32('model.empty').length, 0);

    // The stored bits themselves, straight from the file.
    const t = f.info('model.f16');
    f16Bytes.set(new Uint16Array(raw.buffer.slice(raw.byteOffset + t.fileOffset, raw.byteOffset + t.fileOffset + 18)));
    assert.deepEqual(Array.from(f16Bytes.slice(0, 6)), [0x3c00, 0x7bff, 0x7c00, 0x0001, 0x0000, 0x3c00]);
    assert.ok(isF16NaN(f16Bytes[6]!));
    assert.equal(f16Bytes[7], 0xfc00);
    const b = f.info('model.bf16');
    assert.deepEqual(
      Array.from(new Uint16Array(raw.buffer.slice(raw.byteOffset + b.fileOffset, raw.byteOffset + b.fileOffset + 10))),
      [0x3f80, 0x4049, 0x3f80, 0x3f82, 0xff80],
    );
  } finally {
    await f.close();
  }
});

test('written header is padded with spaces to a multiple of 8 and tensors are aligned', async () => {
  const path = join(dir, 'layout.safetensors');
  await writeSafetensors(path, {
    b: { dtype: 'F16', shape: [3], data: new Float32Array(3) },
    a: { dtype: 'F32', shape: [1], data: new Float32Array(1) },
    c: { dtype: 'I32', shape: [1], data: new Int32Array(1) },
  });
  const raw = new Uint8Array(readFileSync(path));
  const n = Number(new DataView(raw.buffer, raw.byteOffset).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const text = new TextDecoder().decode(raw.subarray(8, 8 + n));
  assert.match(text, /^\{.*\} *$/);
  assert.equal(raw.byteLength, 8 + n + 4 + 4 + 6);
  const header = await readSafetensorsHeader(path);
  // 4-byte tensors first (by name), then 2-byte ones: each starts at a multiple of its size.
  assert.deepEqual(
    header.tensors.map((t) => [t.name, t.begin, t.end]),
    [
      ['a', 0, 4],
      ['c', 4, 8],
      ['b', 8, 14],
    ],
  );
  for (const t of header.tensors) assert.equal(t.fileOffset % (t.dtype === 'F16' ? 2 : 4), 0);
});

test('large 16-bit tensors cross encode chunks and read back into a caller buffer', async () => {
  const n = (1 << 20) + 37;
  const wide = new Float32Array(n); // integers up to 2048 are exact in F16 (11-bit significand)
  const narrow = new Float32Array(n); // integers up to 256 are exact in BF16 (8-bit significand)
  for (let i = 0; i < n; i++) {
    wide[i] = (i % 4096) - 2048;
    narrow[i] = (i % 512) - 256;
  }
  const path = join(dir, 'big.safetensors');
  await writeSafetensors(path, { w: { dtype: 'F16', shape: [n], data: wide }, v: { dtype: 'BF16', shape: [n], data: narrow } });
  const f = await SafetensorsFile.open(path);
  try {
    const out = new Float32Array(n);
    assert.equal(f.readFloat32('w', out), out);
    assert.deepEqual(out, wide);
    assert.deepEqual(f.readFloat32('v'), narrow);
    assert.throws(() => f.readFloat32('w', new Float32Array(n - 1)), /big\.safetensors.*"w".*output array has/);
  } finally {
    await f.close();
  }
});

test('reads F64, I64 and U8 written by other tools, and rejects I64 values beyond int32', () => {
  const f64 = new Float64Array([0.1, -1e300, 2.5]);
  const i64 = new BigInt64Array([0n, -1n, 2147483647n, -2147483648n]);
  const u8 = new Uint8Array([0, 255, 7]);
  const bad = new BigInt64Array([1n, 2147483648n]);
  const data = new Uint8Array(24 + 32 + 16 + 3);
  data.set(bytesOf(f64), 0);
  data.set(bytesOf(i64), 24);
  data.set(bytesOf(bad), 56);
  data.set(u8, 72);
  const file = parseSafetensors(
    rawFile(
      {
        x: { dtype: 'F64', shape: [3], data_offsets: [0, 24] },
        ids: { dtype: 'I64', shape: [2, 2], data_offsets: [24, 56] },
        big: { dtype: 'I64', shape: [2], data_offsets: [56, 72] },
        mask: { dtype: 'U8', shape: [3], data_offsets: [72, 75] },
      },
      data,
    ),
    'foreign.safetensors',
  );
  assert.deepEqual(Array.from(file.readFloat32('x')), [Math.fround(0.1), -Infinity, 2.5]);
  assert.deepEqual(Array.from(file.readInt32('ids')), [0, -1, 2147483647, -2147483648]);
  assert.deepEqual(Array.from(file.readInt32('mask')), [0, 255, 7]);
  assert.throws(() => file.readInt32('big'), /foreign\.safetensors.*"big".*element 1 = 2147483648 does not fit in int32/);
  assert.throws(() => file.readFloat32('ids'), /foreign\.safetensors.*"ids".*dtype I64 cannot be read as float32/);
  assert.throws(() => file.readInt32('x'), /foreign\.safetensors.*"x".*dtype F64 cannot be read as int32/);
  assert.throws(() => file.info('nope'), /foreign\.safetensors.*has no tensor "nope"/);
});

test('in-memory serialize and parse agree with the file writer', async () => {
  const tensors = {
    w: { dtype: 'BF16' as const, shape: [2], data: new Float32Array([1, -3]) },
    k: { dtype: 'I32' as const, shape: [1], data: new Int32Array([9]) },
  };
  const bytes = serializeSafetensors(tensors, { note: 'x' });
  const path = join(dir, 'same.safetensors');
  await writeSafetensors(path, tensors, { note: 'x' });
  assert.deepEqual(new Uint8Array(readFileSync(path)), bytes);
  const parsed = parseSafetensors(bytes, 'mem');
  assert.deepEqual(Array.from(parsed.readFloat32('w')), [1, -3]);
  assert.deepEqual(Array.from(parsed.readInt32('k')), [9]);
  assert.deepEqual(parsed.names(), ['k', 'w']);
  // A file with no tensors is valid and has an empty data buffer.
  assert.deepEqual(parseSafetensors(serializeSafetensors({}), 'empty').names(), []);
});

test('writer rejects bad tensors by name and leaves the existing file untouched', async () => {
  const path = join(dir, 'keep.safetensors');
  await writeSafetensors(path, { a: { dtype: 'F32', shape: [1], data: new Float32Array([5]) } });
  const before = readFileSync(path);
  await assert.rejects(
    writeSafetensors(path, { a: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } }),
    /keep\.safetensors.*"a".*shape \[2,2\] has 4 elements but data has 3/,
  );
  await assert.rejects(
    writeSafetensors(path, { a: { dtype: 'I32', shape: [1], data: new Float32Array(1) as unknown as Int32Array } }),
    /"a".*I32 needs an Int32Array/,
  );
  await assert.rejects(
    writeSafetensors(path, { a: { dtype: 'F8' as 'F32', shape: [1], data: new Float32Array(1) } }),
    /"a".*cannot write dtype "F8"/,
  );
  await assert.rejects(
    writeSafetensors(path, { a: { dtype: 'F32', shape: [-1], data: new Float32Array(1) } }),
    /"a".*shape must be non-negative integers/,
  );
  await assert.rejects(
    writeSafetensors(path, { __metadata__: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }),
    /"__metadata__".*reserved/,
  );
  await assert.rejects(
    writeSafetensors(path, {}, { n: 3 as unknown as string }),
    /keep\.safetensors.*metadata\["n"\] must be a string/,
  );
  assert.deepEqual(readFileSync(path), before);
  assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp-')), []);
});

test('atomic writes replace whole files and clean up when the producer fails', async () => {
  const path = join(dir, 'atomic.txt');
  await atomicWriteFile(path, 'first');
  await atomicWriteFile(path, 'second, longer');
  assert.equal(readFileSync(path, 'utf8'), 'second, longer');
  await assert.rejects(
    atomicWriteStream(path, async (write) => {
      await write(new TextEncoder().encode('partial'));
      throw new Error('producer failed');
    }),
    /producer failed/,
  );
  assert.equal(readFileSync(path, 'utf8'), 'second, longer');
  assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp-')), []);
  await assert.rejects(atomicWriteFile(join(dir, 'no-such-dir', 'x'), 'x'), /ENOENT/);
});

// ---------------------------------------------------------------------------------------------
// Hostile and damaged files: every one must be a clean Error naming the file

const F32x2 = new Uint8Array(8);

const hostile: [string, Uint8Array, RegExp][] = [
  [
    'lying size (offsets span fewer bytes than the shape needs)',
    rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 8] } }, F32x2),
    /"w".*span 8 bytes but dtype F32 with shape \[4\] needs 16/,
  ],
  [
    'offsets past the end of the buffer',
    rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, F32x2),
    /"w".*\[0, 16\] run past the end of the data buffer \(8 bytes\)/,
  ],
  [
    'overlapping tensors',
    rawFile(
      {
        a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
        b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
      },
      F32x2,
    ),
    /"b".*overlap tensor "a"/,
  ],
  [
    'gap between tensors',
    rawFile(
      {
        a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
        b: { dtype: 'U8', shape: [2], data_offsets: [6, 8] },
      },
      F32x2,
    ),
    /"b".*gap of 2 bytes after tensor "a"/,
  ],
  [
    'gap at the start',
    rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, F32x2),
    /"a".*gap of 4 bytes after the start of the data buffer/,
  ],
  [
    'trailing bytes after the last tensor',
    rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, F32x2),
    /tensors cover 4 bytes but the data buffer is 8 bytes/,
  ],
  [
    'negative dimension',
    rawFile({ w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, F32x2),
    /"w".*shape\[0\] is -2/,
  ],
  [
    'fractional dimension',
    rawFile({ w: { dtype: 'F32', shape: [1, 2.5], data_offsets: [0, 8] } }, F32x2),
    /"w".*shape\[1\] is 2\.5/,
  ],
  [
    'dimension given as a string',
    rawFile({ w: { dtype: 'F32', shape: ['2'], data_offsets: [0, 8] } }, F32x2),
    /"w".*shape\[0\] is "2"/,
  ],
  ['shape not an array', rawFile({ w: { dtype: 'F32', shape: 2, data_offsets: [0, 8] } }, F32x2), /"w".*shape must be an array/],
  [
    'shape too large to address',
    rawFile({ w: { dtype: 'F32', shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 8] } }, F32x2),
    /"w".*too large/,
  ],
  ['unknown dtype', rawFile({ w: { dtype: 'F17', shape: [2], data_offsets: [0, 8] } }, F32x2), /"w".*unknown dtype "F17"/],
  ['missing dtype', rawFile({ w: { shape: [2], data_offsets: [0, 8] } }, F32x2), /"w".*unknown dtype undefined/],
  [
    'negative offset',
    rawFile({ w: { dtype: 'F32', shape: [2], data_offsets: [-8, 0] } }, F32x2),
    /"w".*data_offsets begin is -8/,
  ],
  ['offsets wrong length', rawFile({ w: { dtype: 'F32', shape: [2], data_offsets: [0] } }, F32x2), /"w".*must be \[begin, end\]/],
  [
    'end before begin',
    rawFile({ w: { dtype: 'U8', shape: [0], data_offsets: [8, 0] } }, F32x2),
    /"w".*\[8, 0\] end before begin/,
  ],
  ['entry not an object', rawFile({ w: [1, 2] }, F32x2), /"w".*entry must be an object/],
  ['metadata with a non-string value', rawFile({ __metadata__: { step: 3 } }), /__metadata__\["step"\] must be a string/],
  ['metadata not an object', rawFile({ __metadata__: 'x' }), /__metadata__ must be an object/],
  ['header length of 2^63', rawFile({}, new Uint8Array(0), 1n << 63n), /header length 9223372036854775808 exceeds/],
  [
    'header length just over the 100 MB limit',
    rawFile({}, new Uint8Array(0), 100_000_001n),
    /header length 100000001 exceeds the 100000000-byte limit/,
  ],
  ['header length past the end of the file', rawFile({}, new Uint8Array(0), 50n), /header length 50 is larger than the 2 bytes/],
  ['non-JSON header', rawFile('{"w": {dtype: F32}}'), /header is not valid JSON/],
  ['header is a JSON array', rawFile('[1,2]  '), /header must be a JSON object, got \[1,2\]/],
  ['header is JSON null', rawFile('null'), /header must be a JSON object, got null/],
  ['empty header', rawFile(''), /header is not valid JSON/],
  ['header with invalid UTF-8', rawFile('{}').map((b, i) => (i === 9 ? 0xff : b)), /not valid UTF-8/],
  ['file shorter than the length field', new Uint8Array([1, 2, 3]), /file is 3 bytes, too short/],
  ['empty file', new Uint8Array(0), /file is 0 bytes, too short/],
];

for (const [what, bytes, expected] of hostile) {
  test(`hostile file rejected with a clear error: ${what}`, async () => {
    const path = put(bytes);
    const name = path.split('/').pop()!;
    const withFile = (e: unknown): boolean => {
      assert.ok(e instanceof Error);
      assert.ok(e.message.includes(name), `message should name the file: ${e.message}`);
      assert.match(e.message, expected);
      return true;
    };
    await assert.rejects(readSafetensorsHeader(path), withFile);
    await assert.rejects(SafetensorsFile.open(path), withFile);
    assert.throws(() => parseSafetensors(bytes, path), withFile);
  });
}

test('a "__proto__" tensor name is an ordinary tensor', () => {
  const bytes = rawFile('{"__proto__": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', bytesOf(new Float32Array([1, 2])));
  const f = parseSafetensors(bytes, 'proto');
  assert.deepEqual(f.names(), ['__proto__']);
  assert.deepEqual(Array.from(f.readFloat32('__proto__')), [1, 2]);
});

test('a truncated file is rejected at open, and truncation after open fails the read cleanly', async () => {
  const path = join(dir, 'cut.safetensors');
  await writeSafetensors(path, {
    a: { dtype: 'F32', shape: [16], data: new Float32Array(16).fill(1) },
    b: { dtype: 'F32', shape: [16], data: new Float32Array(16).fill(2) },
  });
  const full = readFileSync(path);
  const cutPath = put(full.subarray(0, full.byteLength - 10), 'cut');
  await assert.rejects(SafetensorsFile.open(cutPath), /cut-\d+\.safetensors.*"b".*run past the end of the data buffer/);
  const cutHeader = put(full.subarray(0, 20), 'cut');
  await assert.rejects(readSafetensorsHeader(cutHeader), /cut-\d+\.safetensors.*header length \d+ is larger than the 12 bytes/);

  const f = await SafetensorsFile.open(path);
  try {
    assert.deepEqual(Array.from(f.readFloat32('a')), new Array(16).fill(1));
    truncateSync(path, full.byteLength - 10);
    assert.throws(() => f.readFloat32('b'), /cut\.safetensors.*file ended at byte \d+ while reading tensor "b"/);
  } finally {
    await f.close();
  }
  assert.throws(() => f.readFloat32('a'), /cut\.safetensors.*is closed/);
});

// Written by tools/reference/make_fixtures.py with Python's safetensors library (save_file).
const FIXTURE = fileURLToPath(new URL('./fixtures/parity_model.safetensors', import.meta.url));
const FIXTURE_CONFIG = fileURLToPath(new URL('./fixtures/parity_model.config.json', import.meta.url));

test('reads the committed Python-written fixture parity_model.safetensors: LLaMA names and shapes', async () => {
  const cfg = JSON.parse(readFileSync(FIXTURE_CONFIG, 'utf8')) as Record<string, number>;
  const d = cfg.hidden_size!;
  const ffn = cfg.intermediate_size!;
  const v = cfg.vocab_size!;
  const expected = new Map<string, number[]>([
    ['model.embed_tokens.weight', [v, d]],
    ['model.norm.weight', [d]],
    ['lm_head.weight', [v, d]],
  ]);
  for (let l = 0; l < cfg.num_hidden_layers!; l++) {
    const p = `model.layers.${l}.`;
    for (const m of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) expected.set(`${p}self_attn.${m}.weight`, [d, d]);
    expected.set(`${p}mlp.gate_proj.weight`, [ffn, d]);
    expected.set(`${p}mlp.up_proj.weight`, [ffn, d]);
    expected.set(`${p}mlp.down_proj.weight`, [d, ffn]);
    expected.set(`${p}input_layernorm.weight`, [d]);
    expected.set(`${p}post_attention_layernorm.weight`, [d]);
  }
  const f = await SafetensorsFile.open(FIXTURE);
  try {
    assert.deepEqual(new Set(f.names()), new Set(expected.keys()));
    for (const [name, shape] of expected) {
      assert.deepEqual(f.info(name).shape, shape, name);
      const data = f.readFloat32(name);
      assert.ok(data.every(Number.isFinite), `${name} has non-finite values`);
      // Linear/embedding weights are initialised ~N(0, 0.02); norm weights sit near 1.
      const mean = data.reduce((a, x) => a + x, 0) / data.length;
      assert.ok(name.endsWith('norm.weight') ? Math.abs(mean - 1) < 0.2 : Math.abs(mean) < 0.01, `${name} mean ${mean}`);
    }
    assert.equal(f.metadata?.format, 'pt');
  } finally {
    await f.close();
  }
});

test('rewriting the Python fixture reproduces it byte for byte (same layout as the reference writer)', async () => {
  const original = new Uint8Array(readFileSync(FIXTURE));
  const src = parseSafetensors(original, FIXTURE);
  const tensors: Record<string, TensorToWrite> = {};
  for (const name of src.names()) {
    tensors[name] = { dtype: 'F32', shape: src.info(name).shape, data: src.readFloat32(name) };
  }
  const path = join(dir, 'rewritten.safetensors');
  await writeSafetensors(path, tensors, { format: 'pt' });
  assert.deepEqual(new Uint8Array(readFileSync(path)), original);
});
