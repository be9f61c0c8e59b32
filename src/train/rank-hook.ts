/**
 * Rank of the accumulated update during a run: W_at_warm_start is snapshotted when the low-rank
 * phase starts (kept in RUN/rank_base.safetensors so a resumed run measures against the same
 * reference), and singular values of W − W_at_warm_start are recorded at every merge and at the end.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSafetensors, writeSafetensors } from '../io/safetensors.ts';
import type { LlamaForCausalLM } from '../nn/llama.ts';
import { RankTracker } from '../relora/rank.ts';
import { loraLayers } from '../relora/wrap.ts';
import { sealRunFiles } from './run-folder.ts';
import type { RankHook } from './trainer.ts';

export function makeRankHook(sample: 'default' | 'all' | 'none' | string[]): RankHook | undefined {
  if (sample === 'none') return undefined;
  let tracker: RankTracker | null = null;
  return {
    async start(model: LlamaForCausalLM, runDir: string, resumed: boolean) {
      tracker = new RankTracker(loraLayers(model), { modules: sample === 'default' ? undefined : sample });
      const base = join(runDir, 'rank_base.safetensors');
      if (resumed) {
        // Measuring against the current weights instead would report a different run's ranks.
        if (!existsSync(base)) throw new Error(`${base} is missing: it holds W at the warm start, the reference of this run's rank measurements; restore it to resume the run`);
        const st = parseSafetensors(readFileSync(base), base);
        tracker.startFrom(new Map(st.names().map((n) => [n, st.readFloat32(n)])));
        return;
      }
      tracker.start();
      const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
      const layers = loraLayers(model);
      for (const name of tracker.modules) {
        const l = layers.get(name)!;
        tensors[name] = { dtype: 'F32', shape: [l.outFeatures, l.inFeatures], data: tracker.snapshot(name)! };
      }
      await writeSafetensors(base, tensors);
      await sealRunFiles(runDir);
    },
    measure(_model: LlamaForCausalLM, step: number, merges: number) {
      return tracker ? tracker.measure(step, merges) : [];
    },
  };
}
