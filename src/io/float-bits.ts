/**
 * Bit-exact conversions between float32 and the 16-bit float formats stored in safetensors
 * files (IEEE half "F16" and bfloat16 "BF16"). Narrowing rounds to nearest, ties to even, as
 * PyTorch's `.to(torch.float16 / torch.bfloat16)` does, so files written here match the
 * reference bit for bit.
 */

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** The IEEE bits of `x` rounded to float32. */
export function float32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0]!;
}

/** The float32 whose IEEE bits are `bits`. */
export function float32FromBits(bits: number): number {
  scratchU32[0] = bits >>> 0;
  return scratchF32[0]!;
}

/** float32 bits -> float16 bits, round to nearest even; overflow gives ±Inf, NaN stays NaN. */
export function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;

  if (exp === 0xff) {
    // Keep NaN a NaN: the top mantissa bit makes it quiet and guarantees a nonzero payload.
    return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13);
  }
  // float32 subnormals are below 2^-126, far under half of float16's smallest step (2^-25).
  if (exp === 0) return sign;

  const halfExp = exp - 127 + 15;
  if (halfExp >= 0x1f) return sign | 0x7c00;

  if (halfExp <= 0) {
    // Result is a float16 subnormal (or zero): value / 2^-24, i.e. the 24-bit significand
    // shifted right by (126 - exp) with round-to-nearest-even on the dropped bits.
    const shift = 14 - halfExp;
    if (shift > 24) return sign;
    const significand = mant | 0x800000;
    let q = significand >>> shift;
    const rest = significand & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rest > half || (rest === half && (q & 1) === 1)) q += 1;
    // q === 0x400 here is the smallest normal, which is exactly the right encoding.
    return sign | q;
  }

  let q = (halfExp << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (q & 1) === 1)) q += 1; // a carry may reach Inf: correct
  return sign | q;
}

/** float16 bits -> float32 value (exact: every float16 is representable in float32). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** float32 bits -> bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN. */
export function f32BitsToBf16Bits(bits: number): number {
  const u = bits >>> 0;
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) return (u >>> 16) | 0x40;
  // Adding 0x7fff (+1 when the kept lsb is odd) then truncating is round-half-to-even.
  // The sum stays below 2^32 for every non-NaN input, so >>> cannot wrap.
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

/** bfloat16 bits -> float32 value (exact: bfloat16 is the top half of a float32). */
export function bf16BitsToF32(h: number): number {
  return float32FromBits((h & 0xffff) << 16);
}

let f16Table: Float32Array | undefined;

/** All 65536 float16 values as float32, built on first use (256 KB) to make decoding a lookup. */
function float16Table(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

/** Encodes `src` into `dst` (same length) as float16 bits. */
export function encodeFloat16(src: Float32Array, dst: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = f32BitsToF16Bits(bits[i]!);
}

/** Encodes `src` into `dst` (same length) as bfloat16 bits. */
export function encodeBfloat16(src: Float32Array, dst: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = f32BitsToBf16Bits(bits[i]!);
}

/**
 * Widens 16-bit floats to float32 in place: the `n` 16-bit values sit in the upper half of
 * `out`'s bytes (bytes 2n..4n) and are expanded into all of `out`. Going forward is safe because
 * writing element i touches bytes up to 4i+3, while element i+1 is still unread at 2n+2i+2 and
 * beyond, which is larger for every i < n. This avoids a second buffer for big tensors.
 */
export function widenInPlace(out: Float32Array, format: 'F16' | 'BF16'): void {
  const n = out.length;
  const src = new Uint16Array(out.buffer, out.byteOffset + 2 * n, n);
  if (format === 'F16') {
    const table = float16Table();
    for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
  } else {
    const dst = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0; i < n; i++) dst[i] = src[i]! << 16;
  }
}
