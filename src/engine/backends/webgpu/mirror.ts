/**
 * Which copy of a tensor's data is current, the host array's or the device buffer's, for the
 * webgpu backend (the DeviceMirror of ../../tensor.ts). A tensor's storage array keeps one device
 * buffer for its whole life, pooled together with it, so a steady-state step allocates nothing
 * on either side. Kernels write the device copy; the host copy is brought up to date only when
 * the host reads it (`toHost`, one synchronous readback) and the device copy only when a kernel
 * next uses an array the host wrote.
 *
 * Arrays no tensor owns (rope tables, scratch taken straight from the pool, token ids) are not
 * tracked: a kernel gets a fresh copy of them, and what it writes into one is read back at once.
 */
import type { DeviceMirror } from '../../tensor.ts';
import type { Handle, RemoteDevice } from './remote-device.ts';

/** Where the current data is. GARBAGE: nowhere (a fresh buffer), so neither side needs a copy. */
const enum Current { Host, Device, Both, Garbage }

interface Entry {
  readonly handle: Handle;
  /** A tensor owns the array; otherwise (parked in the pool, or never adopted) it is not tracked. */
  owned: boolean;
  current: Current;
  /** With Current.Host: the host holds zeros, so the device copy is a fill, not an upload. */
  zeros: boolean;
  readonly buffer: WeakRef<ArrayBuffer>;
}

/** A Float32Array argument as a kernel sees it: a buffer and where the array starts in it. */
export interface Bound {
  handle: Handle;
  offset: number;
  /** A copy made for this call only (an untracked array). */
  temporary: boolean;
}

/** The array spans its whole (non-shared) buffer: only such arrays are tracked. */
function wholeBuffer(a: Float32Array): a is Float32Array<ArrayBuffer> {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.buffer instanceof ArrayBuffer;
}

export class Mirror implements DeviceMirror {
  private readonly entries = new WeakMap<ArrayBufferLike, Entry>();
  /** Entries whose device copy is newer, for syncAll. */
  private readonly deviceNewer = new Set<Entry>();
  private readonly finalizer: FinalizationRegistry<Entry>;

  constructor(private readonly dev: RemoteDevice) {
    // An array collected with its buffer still attached (a pool cleared, a wrapped array dropped).
    this.finalizer = new FinalizationRegistry((e) => {
      this.deviceNewer.delete(e);
      this.dev.release(e.handle);
    });
  }

  adopt(data: Float32Array, content: 'garbage' | 'zeros' | 'host'): void {
    if (!wholeBuffer(data)) return;
    let e = this.entries.get(data.buffer);
    if (!e) {
      e = { handle: this.dev.alloc(data.length), owned: true, current: Current.Host, zeros: false, buffer: new WeakRef(data.buffer) };
      this.entries.set(data.buffer, e);
      this.finalizer.register(data.buffer, e, e);
    }
    // Wrapping an array another tensor keeps on the device: its data is what the device holds.
    if (content === 'host' && e.owned && e.current === Current.Device) this.dev.read(e.handle, 0, e.handle.length, new Float32Array(data.buffer));
    e.owned = true;
    e.zeros = content === 'zeros';
    this.set(e, content === 'garbage' ? Current.Garbage : Current.Host);
  }

  toHost(data: Float32Array, write: boolean): void {
    const e = this.entries.get(data.buffer);
    if (!e?.owned) return;
    if (e.current === Current.Device) this.dev.read(e.handle, 0, e.handle.length, new Float32Array(data.buffer));
    this.hostRead(e, write);
  }

  toHostMany(arrays: readonly Float32Array[]): void {
    const entries = arrays.map((a) => this.entries.get(a.buffer));
    const reads: Parameters<RemoteDevice['readMany']>[0][number][] = [];
    for (let i = 0; i < arrays.length; i++) {
      const e = entries[i];
      // An array named twice (two views of one buffer) is read once.
      if (e?.owned && e.current === Current.Device && entries.indexOf(e) === i) reads.push({ t: e.handle, offset: 0, n: e.handle.length, into: new Float32Array(arrays[i].buffer) });
    }
    this.dev.readMany(reads);
    for (const e of entries) if (e?.owned) this.hostRead(e, false);
  }

  private hostRead(e: Entry, write: boolean): void {
    if (write) {
      e.zeros = false;
      this.set(e, Current.Host);
    } else if (e.current !== Current.Host) {
      this.set(e, Current.Both);
    }
  }

  toHostForOverwrite(data: Float32Array): void {
    const e = this.entries.get(data.buffer);
    if (!e?.owned) return;
    e.zeros = false;
    this.set(e, Current.Host);
  }

  disown(data: Float32Array, reuse: boolean): void {
    const e = this.entries.get(data.buffer);
    if (!e) return;
    e.owned = false;
    this.set(e, Current.Garbage);
    if (reuse) return;
    this.finalizer.unregister(e);
    this.entries.delete(data.buffer);
    this.dev.release(e.handle);
  }

  syncAll(): void {
    const arrays: Float32Array[] = [];
    for (const e of this.deviceNewer) {
      const buffer = e.buffer.deref();
      if (buffer) arrays.push(new Float32Array(buffer));
    }
    this.toHostMany(arrays);
  }

  /**
   * The device buffer a kernel reads or writes for `a`: the tracked one (refreshed first if the
   * host wrote it), or a temporary copy of an untracked array.
   */
  bind(a: Float32Array): Bound {
    const e = this.entries.get(a.buffer);
    if (!e?.owned) return { handle: this.dev.upload(a), offset: 0, temporary: true };
    if (e.current === Current.Host) {
      if (e.zeros) this.dev.fill(e.handle, 0, e.handle.length);
      else this.dev.write(e.handle, new Float32Array(a.buffer));
      e.zeros = false;
      this.set(e, Current.Both);
    }
    return { handle: e.handle, offset: a.byteOffset / 4, temporary: false };
  }

  /** After the kernel: what it wrote is current on the device; a temporary goes away (read back first if written). */
  unbind(a: Float32Array, b: Bound, written: boolean): void {
    if (b.temporary) {
      if (written) this.dev.read(b.handle, 0, a.length, a);
      this.dev.release(b.handle);
      return;
    }
    if (written) this.set(this.entries.get(a.buffer)!, Current.Device);
  }

  private set(e: Entry, current: Current): void {
    e.current = current;
    if (current === Current.Device) this.deviceNewer.add(e);
    else this.deviceNewer.delete(e);
  }
}
