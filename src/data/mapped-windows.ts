/**
 * A complete token cache read through memory maps: the file is mapped in fixed windows (256 MiB
 * by default), a few at a time, so a cache of any size is readable while the address space it
 * takes stays bounded. A read inside one window is a copy from the page cache with no system
 * call; the caller reads ranges that straddle two windows some other way.
 */
import { mapFileReadOnly } from '../engine/backends/native.ts';

/** Window size when none is given: large enough that few reads straddle two windows. */
export const DEFAULT_MAP_WINDOW_BYTES = 256 * 1024 * 1024;
/** Windows kept mapped at once; the least recently used one is dropped (and unmapped when collected). */
const MAX_WINDOWS = 3;

export class MappedWindows {
  private readonly windows = new Map<number, ArrayBuffer>();

  private constructor(
    private readonly map: (path: string, offset: number, length: number) => ArrayBuffer,
    private readonly path: string,
    private readonly fileBytes: number,
    private readonly windowBytes: number,
  ) {}

  /**
   * Maps `path` (fileBytes long) in windows of windowBytes, a multiple of `align` (the token
   * width, so no token is split between windows); null when the native addon is not there.
   */
  static open(path: string, fileBytes: number, windowBytes: number, align: number): MappedWindows | null {
    if (!Number.isInteger(windowBytes) || windowBytes < align || windowBytes % align !== 0) {
      throw new Error(`token cache ${path}: map window of ${windowBytes} bytes, expected a positive multiple of ${align}`);
    }
    const map = mapFileReadOnly();
    return map ? new MappedWindows(map, path, fileBytes, windowBytes) : null;
  }

  /**
   * Bytes [byteStart, byteStart + byteLength) as a view of the mapped file, or null when they
   * straddle two windows. Throws (naming the file and the OS error) when mapping fails.
   */
  bytes(byteStart: number, byteLength: number): { buffer: ArrayBuffer; offset: number } | null {
    const index = Math.floor(byteStart / this.windowBytes);
    if (byteLength > 0 && Math.floor((byteStart + byteLength - 1) / this.windowBytes) !== index) return null;
    let buffer = this.windows.get(index);
    if (buffer) {
      this.windows.delete(index);
    } else {
      const start = index * this.windowBytes;
      buffer = this.map(this.path, start, Math.min(this.windowBytes, this.fileBytes - start));
      if (this.windows.size >= MAX_WINDOWS) this.windows.delete(this.windows.keys().next().value!);
    }
    this.windows.set(index, buffer);
    return { buffer, offset: byteStart - index * this.windowBytes };
  }

  /** Drops every window; each is unmapped when the garbage collector frees it. */
  close(): void {
    this.windows.clear();
  }
}
