/**
 * When ReLoRA restarts happen (docs/method.md, "Merge and re-initialisation"). Updates are counted u = 1, 2, … from the start of
 * the ReLoRA phase, and update u uses λ(u − 1). A restart (merge, then optimizer reset) follows
 * the update that used λ(kR) for k >= 1, which under cosine_restarts is the zero-learning-rate
 * update at the start of each restart warm-up.
 */

/** How many merges and optimizer resets a run has done; logged and checkpointed. */
export interface RestartCounters {
  merges: number;
  resets: number;
}

export function emptyRestartCounters(): RestartCounters {
  return { merges: 0, resets: 0 };
}

function checkCycleLength(cycleLength: number): void {
  if (!Number.isInteger(cycleLength) || cycleLength < 1) {
    throw new Error(`restarts: cycleLength must be an integer >= 1, got ${cycleLength}`);
  }
}

/** Whether a restart follows update `u` (1-based): u > R and (u − 1) mod R = 0. */
export function isRestartAfter(u: number, cycleLength: number): boolean {
  checkCycleLength(cycleLength);
  if (!Number.isInteger(u) || u < 1) throw new Error(`restarts: update count u must be an integer >= 1, got ${u}`);
  return u > cycleLength && (u - 1) % cycleLength === 0;
}

/** All updates u in 1 … steps after which a restart happens, ascending. */
export function restartsAfter(steps: number, cycleLength: number): number[] {
  checkCycleLength(cycleLength);
  if (!Number.isInteger(steps) || steps < 0) throw new Error(`restarts: steps must be an integer >= 0, got ${steps}`);
  const out: number[] = [];
  for (let u = cycleLength + 1; u <= steps; u += cycleLength) out.push(u);
  return out;
}
