/**
 * Which process of a data-parallel job keeps the optimizer state of which parameter, when that
 * state is sharded (ZeRO stage 1; PyTorch's ZeroRedundancyOptimizer): whole tensors are dealt
 * out, largest first, each to the process holding the fewest values so far, so every process
 * keeps about 1/N of the moments and the ReLoRA reset (which prunes whole tensors, by magnitude
 * too) needs no other process's state.
 */

/** The owning process of each parameter (by index), given the parameters' sizes; the same on every process. */
export function partitionParameters(sizes: readonly number[], processes: number): number[] {
  if (!Number.isInteger(processes) || processes < 1) throw new Error(`partitionParameters: processes must be a positive integer, got ${processes}`);
  const load = new Array<number>(processes).fill(0);
  const owner = new Array<number>(sizes.length).fill(0);
  // Ties (equal sizes, equal loads) go to the lower index, so the result is deterministic.
  const order = sizes.map((_, i) => i).sort((a, b) => sizes[b] - sizes[a] || a - b);
  for (const i of order) {
    let least = 0;
    for (let r = 1; r < processes; r++) if (load[r] < load[least]) least = r;
    owner[i] = least;
    load[least] += sizes[i];
  }
  return owner;
}
