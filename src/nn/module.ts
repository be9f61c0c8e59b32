/**
 * Module: a tree of named parameters and submodules, with PyTorch's names (named_parameters,
 * state_dict, train/eval) so parameter names come out as Hugging Face's.
 */
import { shapeStr, type Tensor } from '../engine/tensor.ts';

export abstract class Module {
  training = true;
  private readonly paramSlots = new Map<string, Tensor>();
  private readonly childSlots = new Map<string, Module>();

  protected registerParameter(name: string, t: Tensor): Tensor {
    this.paramSlots.set(name, t);
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this.childSlots.set(name, m);
    return m;
  }

  /** Replace a child module (e.g. wrap a Linear into a ReLoRA linear). */
  replaceModule(name: string, m: Module): void {
    if (!this.childSlots.has(name)) throw new Error(`replaceModule: no submodule named "${name}"`);
    this.childSlots.set(name, m);
  }

  /** Replace a parameter tensor in place (e.g. after loading weights). */
  setParameter(name: string, t: Tensor): void {
    if (!this.paramSlots.has(name)) throw new Error(`setParameter: no parameter named "${name}"`);
    this.paramSlots.set(name, t);
  }

  param(name: string): Tensor {
    const t = this.paramSlots.get(name);
    if (!t) throw new Error(`no parameter named "${name}"`);
    return t;
  }

  child<M extends Module = Module>(name: string): M {
    const m = this.childSlots.get(name);
    if (!m) throw new Error(`no submodule named "${name}"`);
    return m as M;
  }

  namedChildren(): [string, Module][] {
    return [...this.childSlots.entries()];
  }

  /** Every (name, module) below and including this one, depth first, in registration order. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, m] of this.childSlots) out.push(...m.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  /**
   * Every (name, parameter), depth first, in registration order. A tensor registered in two
   * places (tied embeddings) is listed once, under its first name, so optimizers, state dicts,
   * initialisation and dispose each see it once.
   */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    this.collectParameters(prefix, new Set(), out);
    return out;
  }

  private collectParameters(prefix: string, seen: Set<Tensor>, out: [string, Tensor][]): void {
    for (const [n, t] of this.paramSlots) {
      if (seen.has(t)) continue;
      seen.add(t);
      out.push([prefix ? `${prefix}.${n}` : n, t]);
    }
    for (const [n, m] of this.childSlots) m.collectParameters(prefix ? `${prefix}.${n}` : n, seen, out);
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Parameters that receive gradients and optimizer state. */
  namedTrainableParameters(): [string, Tensor][] {
    return this.namedParameters().filter(([, t]) => t.requiresGrad);
  }

  stateDict(): Record<string, Tensor> {
    return Object.fromEntries(this.namedParameters());
  }

  /** Copy values in (shapes must match). Strict: every parameter must be present and no extras. */
  loadStateDict(dict: Record<string, Float32Array | Tensor>, strict = true, source = 'state dict'): void {
    const own = new Map(this.namedParameters());
    if (strict) {
      const missing = [...own.keys()].filter((k) => !(k in dict));
      const extra = Object.keys(dict).filter((k) => !own.has(k));
      if (missing.length || extra.length) {
        throw new Error(`${source}: ${missing.length ? `missing ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` (+${missing.length - 5} more)` : ''}` : ''}${missing.length && extra.length ? '; ' : ''}${extra.length ? `unexpected ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ` (+${extra.length - 5} more)` : ''}` : ''}`);
      }
    }
    for (const [name, value] of Object.entries(dict)) {
      const t = own.get(name);
      if (!t) continue;
      const src = value instanceof Float32Array ? value : value.data;
      if (src.length !== t.size) {
        throw new Error(`${source}: "${name}" has ${src.length} values, the model expects shape ${shapeStr(t.shape)} (${t.size} values)`);
      }
      t.data.set(src);
    }
    for (const [, m] of this.namedModules()) m.parametersWritten();
  }

  /**
   * Drops whatever this module derived from its parameters' values (a LoRA layer's bf16 copy of
   * its frozen weight). loadStateDict calls it; code that writes parameter values in place
   * otherwise, outside the optimizer, calls it too.
   */
  parametersWritten(): void {}

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Free every parameter buffer. */
  dispose(): void {
    for (const [, m] of this.namedModules()) m.parametersWritten();
    for (const t of this.parameters()) t.dispose();
  }
}
