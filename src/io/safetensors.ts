/**
 * The safetensors format (https://github.com/huggingface/safetensors):
 *
 *   [8 bytes: header length N, little-endian u64]
 *   [N bytes: UTF-8 JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str}}]
 *   [data buffer: every tensor's bytes, little-endian, row-major; offsets relative to its start]
 *
 * Files come from elsewhere (Hugging Face downloads, old checkpoints, disks that filled up), so
 * the header is validated completely before any offset in it is used: a hostile or damaged
 * file produces an Error naming the file, the tensor and the problem, never an out-of-bounds
 * read or a giant allocation.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { atomicWriteStream } from './atomic.ts';
import { encodeBfloat16, encodeFloat16, widenInPlace } from './float-bits.ts';

/** Every dtype the format defines. Headers with any of these parse; reading converts a subset. */
export const DTYPE_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;

export type SafetensorsDtype = keyof typeof DTYPE_SIZES;
export type WritableDtype = 'F32' | 'F16' | 'BF16' | 'I32';

/** Same limit as the reference implementation: beyond this a header is certainly not honest. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /** Number of elements (product of shape; 1 for a scalar). */
  numel: number;
  /** Byte range within the data buffer, as written in the header. */
  begin: number;
  end: number;
  /** Absolute byte position of the tensor's first byte in the file. */
  fileOffset: number;
}

export interface SafetensorsHeader {
  /** The path (or name) used in error messages. */
  file: string;
  fileSize: number;
  headerLength: number;
  /** Absolute offset of the data buffer: 8 + headerLength. */
  dataStart: number;
  /** Tensors in file order (sorted by offset). */
  tensors: TensorInfo[];
  metadata: Record<string, string> | null;
}

export interface TensorToWrite {
  dtype: WritableDtype;
  shape: readonly number[];
  data: Float32Array | Int32Array;
}

// ---------------------------------------------------------------------------------------------
// Errors and small checks

function quote(name: string): string {
  const q = JSON.stringify(name);
  return q.length > 200 ? `${q.slice(0, 200)}…"` : q;
}

function fileError(file: string, problem: string): Error {
  return new Error(`safetensors file ${quote(file)}: ${problem}`);
}

function tensorError(file: string, tensor: string, problem: string): Error {
  return fileError(file, `tensor ${quote(tensor)}: ${problem}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  if (s === undefined) return String(v);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

function assertLittleEndianHost(): void {
  // Typed arrays use the host's byte order and the format is little-endian; every platform
  // Node supports in practice is little-endian, so refuse rather than carry a swap path.
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new Error('safetensors: big-endian hosts are not supported');
  }
}

/** Product of dimensions; null when it would leave the range where doubles count exactly. */
function shapeProduct(shape: readonly number[]): number | null {
  let n = 1;
  for (const d of shape) {
    if (d !== 0 && n > Number.MAX_SAFE_INTEGER / d) return null;
    n *= d;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Header validation

function parseEntry(file: string, name: string, raw: unknown, bufferSize: number, dataStart: number): TensorInfo {
  if (!isRecord(raw)) {
    throw tensorError(file, name, `entry must be an object {dtype, shape, data_offsets}, got ${describe(raw)}`);
  }
  const { dtype, shape, data_offsets: offsets } = raw;

  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_SIZES, dtype)) {
    throw tensorError(
      file,
      name,
      `unknown dtype ${describe(dtype)}; expected one of ${Object.keys(DTYPE_SIZES).join(', ')}`,
    );
  }
  const elementSize = DTYPE_SIZES[dtype as SafetensorsDtype];

  if (!Array.isArray(shape)) {
    throw tensorError(file, name, `shape must be an array of non-negative integers, got ${describe(shape)}`);
  }
  for (let i = 0; i < shape.length; i++) {
    const d: unknown = shape[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw tensorError(file, name, `shape[${i}] is ${describe(d)}; dimensions must be non-negative integers`);
    }
  }
  const dims = shape as number[];
  const numel = shapeProduct(dims);
  if (numel === null || numel * elementSize > Number.MAX_SAFE_INTEGER) {
    throw tensorError(file, name, `shape ${describe(dims)} is too large to address`);
  }

  if (!Array.isArray(offsets) || offsets.length !== 2) {
    throw tensorError(file, name, `data_offsets must be [begin, end], got ${describe(offsets)}`);
  }
  const [begin, end] = offsets as unknown[];
  for (const [label, v] of [
    ['begin', begin],
    ['end', end],
  ] as const) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw tensorError(file, name, `data_offsets ${label} is ${describe(v)}; expected a non-negative integer`);
    }
  }
  const b = begin as number;
  const e = end as number;
  if (e < b) throw tensorError(file, name, `data_offsets [${b}, ${e}] end before begin`);
  if (e > bufferSize) {
    throw tensorError(
      file,
      name,
      `data_offsets [${b}, ${e}] run past the end of the data buffer (${bufferSize} bytes)`,
    );
  }
  const expected = numel * elementSize;
  if (e - b !== expected) {
    throw tensorError(
      file,
      name,
      `data_offsets [${b}, ${e}] span ${e - b} bytes but dtype ${dtype} with shape ${describe(dims)} needs ${expected}`,
    );
  }
  return {
    name,
    dtype: dtype as SafetensorsDtype,
    shape: Object.freeze(dims.slice()),
    numel,
    begin: b,
    end: e,
    fileOffset: dataStart + b,
  };
}

/** The header length field, checked against the file size and the sanity limit. */
function checkHeaderLength(file: string, prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8) {
    throw fileError(file, `file is ${fileSize} bytes, too short to hold the 8-byte header length`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw fileError(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
  }
  if (n > BigInt(fileSize - 8)) {
    throw fileError(
      file,
      `header length ${n} is larger than the ${fileSize - 8} bytes after the length field (truncated file?)`,
    );
  }
  return Number(n);
}

/**
 * Validates a header's JSON bytes against the total file size: every entry well-formed, every
 * range inside the buffer, and the tensors tiling the buffer exactly (no gaps, no overlaps, no
 * trailing bytes), as the reference implementation requires.
 */
function parseHeaderJson(file: string, json: Uint8Array, fileSize: number): SafetensorsHeader {
  const headerLength = json.byteLength;
  const dataStart = 8 + headerLength;
  const bufferSize = fileSize - dataStart;

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch {
    throw fileError(file, `header (${headerLength} bytes) is not valid UTF-8`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw fileError(file, `header is not valid JSON: ${(err as Error).message}`);
  }
  if (!isRecord(parsed)) {
    throw fileError(file, `header must be a JSON object, got ${describe(parsed)}`);
  }

  let metadata: Record<string, string> | null = null;
  const tensors: TensorInfo[] = [];
  for (const [key, value] of Object.entries(parsed)) {
    if (key === '__metadata__') {
      if (!isRecord(value)) throw fileError(file, `__metadata__ must be an object of strings, got ${describe(value)}`);
      // A null-prototype object: metadata keys come from the file and may be "__proto__".
      metadata = Object.create(null) as Record<string, string>;
      for (const [mk, mv] of Object.entries(value)) {
        if (typeof mv !== 'string') {
          throw fileError(file, `__metadata__[${quote(mk)}] must be a string, got ${describe(mv)}`);
        }
        metadata[mk] = mv;
      }
      continue;
    }
    tensors.push(parseEntry(file, key, value, bufferSize, dataStart));
  }

  tensors.sort((x, y) => x.begin - y.begin || x.end - y.end);
  let covered = 0;
  let previous: TensorInfo | undefined;
  for (const t of tensors) {
    if (t.begin < covered) {
      throw tensorError(
        file,
        t.name,
        `data_offsets [${t.begin}, ${t.end}] overlap tensor ${quote(previous!.name)} [${previous!.begin}, ${previous!.end}]`,
      );
    }
    if (t.begin > covered) {
      const after = previous === undefined ? 'the start of the data buffer' : `tensor ${quote(previous.name)}`;
      throw tensorError(
        file,
        t.name,
        `data_offsets [${t.begin}, ${t.end}] leave a gap of ${t.begin - covered} bytes after ${after}`,
      );
    }
    covered = t.end;
    previous = t;
  }
  if (covered !== bufferSize) {
    throw fileError(
      file,
      `the tensors cover ${covered} bytes but the data buffer is ${bufferSize} bytes ` +
        `(file size ${fileSize} = 8 + header ${headerLength} + data); the file is damaged or has trailing bytes`,
    );
  }
  return { file, fileSize, headerLength, dataStart, tensors, metadata };
}

// ---------------------------------------------------------------------------------------------
// Reading

/** Reads tensors of a validated header; subclasses say where the bytes come from. */
abstract class SafetensorsReader {
  readonly header: SafetensorsHeader;
  private readonly byName = new Map<string, TensorInfo>();

  protected constructor(header: SafetensorsHeader) {
    this.header = header;
    for (const t of header.tensors) this.byName.set(t.name, t);
  }

  /** Copies the tensor's bytes into `target` (exactly `info.end - info.begin` bytes). */
  protected abstract fill(info: TensorInfo, target: Uint8Array): void;

  get metadata(): Record<string, string> | null {
    return this.header.metadata;
  }

  /** Tensor names in file order. */
  names(): string[] {
    return this.header.tensors.map((t) => t.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (t === undefined) throw fileError(this.header.file, `has no tensor ${quote(name)}`);
    return t;
  }

  /** The tensor's raw little-endian bytes. */
  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    const out = new Uint8Array(t.end - t.begin);
    this.fill(t, out);
    return out;
  }

  /**
   * The tensor as float32, widening F16/BF16 exactly and rounding F64 to nearest. Pass `out`
   * (length = numel) to read straight into existing storage, e.g. a parameter's buffer.
   */
  readFloat32(name: string, out?: Float32Array): Float32Array {
    assertLittleEndianHost();
    const t = this.info(name);
    const dst = this.output(t, out, Float32Array);
    switch (t.dtype) {
      case 'F32':
        this.fill(t, new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength));
        break;
      case 'F16':
      case 'BF16':
        // Read the 16-bit values into the upper half of the output, then widen in place.
        this.fill(t, new Uint8Array(dst.buffer, dst.byteOffset + 2 * t.numel, 2 * t.numel));
        widenInPlace(dst, t.dtype);
        break;
      case 'F64': {
        const wide = new Float64Array(t.numel);
        this.fill(t, new Uint8Array(wide.buffer));
        dst.set(wide);
        break;
      }
      default:
        throw tensorError(
          this.header.file,
          name,
          `dtype ${t.dtype} cannot be read as float32 (readFloat32 takes F32, F16, BF16, F64; use readInt32 for integers)`,
        );
    }
    return dst;
  }

  /** The tensor as int32: I32 as is, U8 widened, I64 narrowed when every value fits. */
  readInt32(name: string, out?: Int32Array): Int32Array {
    assertLittleEndianHost();
    const t = this.info(name);
    const dst = this.output(t, out, Int32Array);
    switch (t.dtype) {
      case 'I32':
        this.fill(t, new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength));
        break;
      case 'U8': {
        const narrow = new Uint8Array(t.numel);
        this.fill(t, narrow);
        dst.set(narrow);
        break;
      }
      case 'I64': {
        // Each int64 as (low, high) int32 words; it fits in int32 iff high is low's sign extension.
        const words = new Int32Array(2 * t.numel);
        this.fill(t, new Uint8Array(words.buffer));
        for (let i = 0; i < t.numel; i++) {
          const lo = words[2 * i]!;
          const hi = words[2 * i + 1]!;
          if (hi !== lo >> 31) {
            const value = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
            throw tensorError(this.header.file, name, `element ${i} = ${value} does not fit in int32`);
          }
          dst[i] = lo;
        }
        break;
      }
      default:
        throw tensorError(
          this.header.file,
          name,
          `dtype ${t.dtype} cannot be read as int32 (readInt32 takes I32, I64, U8; use readFloat32 for floats)`,
        );
    }
    return dst;
  }

  private output<T extends Float32Array | Int32Array>(
    t: TensorInfo,
    out: T | undefined,
    make: new (n: number) => T,
  ): T {
    if (out === undefined) return new make(t.numel);
    if (out.length !== t.numel) {
      throw tensorError(this.header.file, t.name, `output array has ${out.length} elements, tensor has ${t.numel}`);
    }
    return out;
  }
}

// Bounded so a single read() never approaches the platform's per-call limit (2 GiB on Linux).
const READ_CHUNK_BYTES = 1 << 30;

/**
 * A safetensors file on disk. Opening reads and validates only the header; each tensor is then
 * read with positioned reads straight into its destination, so a multi-gigabyte checkpoint is
 * never held in memory twice.
 */
export class SafetensorsFile extends SafetensorsReader {
  private fd: number | null;

  private constructor(header: SafetensorsHeader, fd: number) {
    super(header);
    this.fd = fd;
  }

  static async open(path: string): Promise<SafetensorsFile> {
    const fd = openSync(path, 'r');
    try {
      const header = readHeaderFromFd(path, fd);
      return new SafetensorsFile(header, fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  protected fill(info: TensorInfo, target: Uint8Array): void {
    if (this.fd === null) throw fileError(this.header.file, `is closed; cannot read tensor ${quote(info.name)}`);
    readExactly(this.header.file, this.fd, target, info.fileOffset, `tensor ${quote(info.name)}`);
  }

  async close(): Promise<void> {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}

/** A safetensors file already in memory (small files, tests). Tensor reads copy out of `buf`. */
export class SafetensorsBuffer extends SafetensorsReader {
  private readonly buf: Uint8Array;

  constructor(buf: Uint8Array, nameForErrors: string) {
    const length = checkHeaderLength(nameForErrors, buf, buf.byteLength);
    super(parseHeaderJson(nameForErrors, buf.subarray(8, 8 + length), buf.byteLength));
    this.buf = buf;
  }

  protected fill(info: TensorInfo, target: Uint8Array): void {
    target.set(this.buf.subarray(info.fileOffset, info.fileOffset + (info.end - info.begin)));
  }
}

/** Parses and validates an in-memory safetensors file. */
export function parseSafetensors(buf: Uint8Array, nameForErrors: string): SafetensorsBuffer {
  return new SafetensorsBuffer(buf, nameForErrors);
}

function readExactly(file: string, fd: number, target: Uint8Array, position: number, what: string): void {
  let done = 0;
  while (done < target.byteLength) {
    const want = Math.min(target.byteLength - done, READ_CHUNK_BYTES);
    const got = readSync(fd, target, done, want, position + done);
    if (got === 0) {
      throw fileError(
        file,
        `file ended at byte ${position + done} while reading ${what} (${target.byteLength} bytes from ${position}); ` +
          'was it truncated or changed after opening?',
      );
    }
    done += got;
  }
}

function readHeaderFromFd(file: string, fd: number): SafetensorsHeader {
  const fileSize = fstatSync(fd).size;
  const prefix = new Uint8Array(8);
  if (fileSize >= 8) readExactly(file, fd, prefix, 0, 'the header length');
  const length = checkHeaderLength(file, prefix, fileSize);
  const json = new Uint8Array(length);
  readExactly(file, fd, json, 8, 'the header');
  return parseHeaderJson(file, json, fileSize);
}

/** Reads and validates only the header of a safetensors file (names, dtypes, shapes, metadata). */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fd = openSync(path, 'r');
  try {
    return readHeaderFromFd(path, fd);
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

const WRITABLE: Record<WritableDtype, 'float' | 'int'> = { F32: 'float', F16: 'float', BF16: 'float', I32: 'int' };

// 16-bit encoding happens in slices of this many elements so writing never doubles memory.
const ENCODE_CHUNK_ELEMENTS = 1 << 20;

interface PlannedTensor extends TensorToWrite {
  name: string;
  begin: number;
  end: number;
}

function planLayout(
  file: string,
  tensors: Record<string, TensorToWrite>,
  metadata: Record<string, string> | undefined,
): { header: Uint8Array; planned: PlannedTensor[] } {
  const entries: PlannedTensor[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__') throw tensorError(file, name, 'name is reserved for metadata');
    if (!isRecord(t)) throw tensorError(file, name, `expected {dtype, shape, data}, got ${describe(t)}`);
    const kind = Object.hasOwn(WRITABLE, t.dtype) ? WRITABLE[t.dtype] : undefined;
    if (kind === undefined) {
      throw tensorError(file, name, `cannot write dtype ${describe(t.dtype)}; expected F32, F16, BF16 or I32`);
    }
    if (kind === 'float' && !(t.data instanceof Float32Array)) {
      throw tensorError(file, name, `dtype ${t.dtype} needs a Float32Array, got ${t.data?.constructor?.name}`);
    }
    if (kind === 'int' && !(t.data instanceof Int32Array)) {
      throw tensorError(file, name, `dtype I32 needs an Int32Array, got ${t.data?.constructor?.name}`);
    }
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw tensorError(file, name, `shape must be non-negative integers, got ${describe(t.shape)}`);
    }
    const numel = shapeProduct(t.shape);
    if (numel !== t.data.length) {
      throw tensorError(file, name, `shape ${describe(t.shape)} has ${numel} elements but data has ${t.data.length}`);
    }
    entries.push({ name, dtype: t.dtype, shape: t.shape, data: t.data, begin: 0, end: 0 });
  }
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw fileError(file, `metadata[${quote(k)}] must be a string, got ${describe(v)}`);
    }
  }

  // Largest elements first, then by name (as the reference writer orders them): with the
  // header padded to 8 bytes, every tensor then starts at a multiple of its element size.
  entries.sort(
    (a, b) => DTYPE_SIZES[b.dtype] - DTYPE_SIZES[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  let offset = 0;
  const parts: string[] = [];
  if (metadata !== undefined) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  for (const e of entries) {
    e.begin = offset;
    e.end = offset + e.data.length * DTYPE_SIZES[e.dtype];
    offset = e.end;
    // Built by hand rather than as one object: JS objects list integer-like keys ("0") first.
    parts.push(`${JSON.stringify(e.name)}:${JSON.stringify({ dtype: e.dtype, shape: e.shape, data_offsets: [e.begin, e.end] })}`);
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const header = new Uint8Array(8 + padded).fill(0x20);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  return { header, planned: entries };
}

/**
 * The file's bytes as a sequence of chunks. A yielded 16-bit chunk is reused for the next one,
 * so a consumer must finish with each chunk (write or copy it) before asking for the next.
 */
function* chunks(header: Uint8Array, planned: PlannedTensor[]): Generator<Uint8Array> {
  yield header;
  let scratch: Uint16Array | undefined;
  for (const t of planned) {
    if (t.dtype === 'F32' || t.dtype === 'I32') {
      yield new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      continue;
    }
    const src = t.data as Float32Array;
    scratch ??= new Uint16Array(Math.min(ENCODE_CHUNK_ELEMENTS, src.length));
    for (let start = 0; start < src.length; start += ENCODE_CHUNK_ELEMENTS) {
      const slice = src.subarray(start, Math.min(start + ENCODE_CHUNK_ELEMENTS, src.length));
      if (scratch.length < slice.length) scratch = new Uint16Array(slice.length);
      const dst = scratch.subarray(0, slice.length);
      if (t.dtype === 'F16') encodeFloat16(slice, dst);
      else encodeBfloat16(slice, dst);
      yield new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
    }
  }
}

/** Serializes tensors to an in-memory safetensors file (small files, tests). */
export function serializeSafetensors(
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Uint8Array {
  assertLittleEndianHost();
  const { header, planned } = planLayout('<memory>', tensors, metadata);
  const total = header.byteLength + (planned.length === 0 ? 0 : planned[planned.length - 1]!.end);
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks(header, planned)) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/**
 * Writes tensors as a safetensors file, converting float32 data to F16/BF16 (round to nearest
 * even) where asked. The file is streamed tensor by tensor to a temporary name and renamed into
 * place, so `path` is never left half-written.
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<void> {
  assertLittleEndianHost();
  const { header, planned } = planLayout(path, tensors, metadata);
  await atomicWriteStream(path, async (write) => {
    for (const c of chunks(header, planned)) await write(c);
  });
}
