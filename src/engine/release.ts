/** Giving back, during forward, the buffers of intermediates that backward will not read. */
import type { Tensor } from './tensor.ts';

/**
 * Releases (Tensor.releaseValues) the values of a block's intermediates that no backward reads,
 * right after the block's forward, so the next block reuses their buffers: for a decoder layer
 * in bf16 that is everything its products only take as bf16 copies. Walks the graph from
 * `output` back to `inputs`, which must be the only tensors with a producer the block takes from
 * outside (parameters and constants have none), and must run once every op of the block that
 * consumes an intermediate has run. The output and the inputs themselves are kept.
 */
export function releaseUnreadValues(output: Tensor, inputs: readonly Tensor[]): void {
  if (!output.node) return;
  const stop = new Set(inputs);
  const seen = new Set<Tensor>(), read = new Set<Tensor>(), stack = [output];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    const n = t.node;
    if (!n) continue;
    for (const r of n.reads ?? n.inputs) read.add(r);
    for (const i of n.inputs) if (!stop.has(i) && !seen.has(i)) stack.push(i);
  }
  for (const t of seen) if (t !== output && t.node && !read.has(t)) t.releaseValues();
}
