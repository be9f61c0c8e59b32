/**
 * `relora schedule`: shows a learning-rate schedule and when ReLoRA restarts (merge, then
 * optimizer reset) happen, as a terminal plot, as JSON, or as an SVG file. With
 * `--warm-start-steps` it shows a whole run: the full-rank warm start, then the low-rank phase
 * (the phases are planned as `relora train` plans them, src/train/phases.ts).
 */
import { writeFile } from 'node:fs/promises';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { makeSchedule, SCHEDULER_KINDS, type ScheduleConfig } from '../../optim/schedule.ts';
import { restartsAfter } from '../../relora/restarts.ts';
import { svgLineChart } from '../../report/chart.ts';
import { terminalPlot } from '../../report/terminal-plot.ts';
import { resolveConfig } from '../../train/config.ts';
import { planPhases, scheduleFor } from '../../train/phases.ts';

export interface ScheduleReport {
  /** λ(s) for s = 0 … steps − 1; update u uses λ(u − 1). */
  lr_multiplier: number[];
  /** Updates u after which every ReLoRA layer is merged and re-initialised. */
  merges_after: number[];
  /** Updates u after which the LoRA factors' optimizer state is pruned. */
  resets_after: number[];
}

/** The command's result as data; throws an Error naming the field for invalid settings. */
export function scheduleReport(cfg: ScheduleConfig): ScheduleReport {
  const lambda = makeSchedule(cfg);
  const lr = Array.from({ length: cfg.steps }, (_, s) => lambda(s));
  // Only the restart schedule has restarts; merge and reset always happen together there.
  const restarts = cfg.scheduler === 'cosine_restarts' ? restartsAfter(cfg.steps, cfg.cycleLength!) : [];
  return { lr_multiplier: lr, merges_after: restarts, resets_after: [...restarts] };
}

/** How the whole run's schedule is drawn: a warm start of `steps` updates before the phase. */
export interface WarmStartSchedule {
  steps: number;
  /** `run`: the first part of a cosine over the whole run; `phase`: a complete cosine of its own. */
  schedule: 'run' | 'phase';
  /** The warm start's peak learning rate as a fraction of the low-rank phase's. */
  lrRatio: number;
}

/**
 * The learning rate of every update of a run with a full-rank warm start, as a multiple of the
 * low-rank phase's peak, and the (global) updates after which ReLoRA merges. Config problems
 * are reported with the config's own key names.
 */
export function runScheduleReport(cfg: ScheduleConfig, warm: WarmStartSchedule): ScheduleReport {
  const run = resolveConfig({
    mode: cfg.scheduler === 'cosine_restarts' ? 'relora' : 'lora',
    scheduler: cfg.scheduler,
    steps: cfg.steps,
    warm_start_steps: warm.steps,
    warm_start_schedule: warm.schedule,
    lr: 1,
    warm_start_lr: warm.lrRatio,
    warmup_steps: cfg.warmupSteps,
    restart_warmup_steps: cfg.restartWarmupSteps,
    cycle_length: cfg.cycleLength,
    min_lr_ratio: cfg.minLrRatio,
  }, 'relora schedule');
  const lr: number[] = [];
  for (const plan of planPhases(run)) {
    const lambda = scheduleFor(run, plan);
    for (let s = 0; s < plan.steps; s++) lr.push(plan.lr * lambda(s));
  }
  const low = planPhases(run).at(-1)!;
  const restarts = cfg.scheduler === 'cosine_restarts' ? restartsAfter(low.steps, cfg.cycleLength!).map((u) => u + low.start) : [];
  return { lr_multiplier: lr, merges_after: restarts, resets_after: [...restarts] };
}

function parseCount(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('Expected a whole number >= 0.');
  return Number(value);
}

function parseRatio(value: string): number {
  const text = value.trim();
  if (!/^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw new InvalidArgumentError('Expected a number in (0, 1].');
  return Number(text);
}

interface ScheduleFlags {
  json?: boolean;
  scheduler: ScheduleConfig['scheduler'];
  steps: number;
  warmupSteps: number;
  restartWarmupSteps: number;
  cycleLength: number;
  minLrRatio: number;
  warmStartSteps: number;
  warmStartSchedule: WarmStartSchedule['schedule'];
  warmStartLrRatio: number;
  plot?: string;
}

function listOrNone(xs: readonly number[]): string {
  return xs.length > 0 ? xs.join(', ') : 'none';
}

export function register(program: Command): void {
  const cmd: Command = program
    .command('schedule')
    .description('show a learning-rate schedule and the updates after which ReLoRA merges and resets')
    .option('--json', 'print {"lr_multiplier", "merges_after", "resets_after"} as JSON')
    .addOption(
      new Option('--scheduler <kind>', 'learning-rate schedule').choices(SCHEDULER_KINDS).default('cosine_restarts'),
    )
    .option('--steps <n>', 'update steps N in the schedule', parseCount, 1000)
    .option('--warmup-steps <n>', 'first linear warm-up W', parseCount, 100)
    .option('--restart-warmup-steps <n>', 'warm-up after each restart (cosine_restarts)', parseCount, 50)
    .option('--cycle-length <n>', 'restart period R (cosine_restarts)', parseCount, 250)
    .option('--min-lr-ratio <m>', 'cosine floor as a fraction of the peak, in (0, 1]', parseRatio, 0.1)
    .option('--warm-start-steps <n>', 'show a whole run: this many full-rank updates first, then the schedule above over the rest of --steps', parseCount, 0)
    .addOption(new Option('--warm-start-schedule <kind>', 'warm start: run (first part of a cosine over the whole run) or phase (a cosine of its own)').choices(['run', 'phase']).default('run'))
    .option('--warm-start-lr-ratio <x>', "the warm start's peak as a fraction of the low-rank phase's (relora train's default is 0.5)", parseRatio, 0.5)
    .option('--plot <file>', 'also write the schedule as an SVG chart to FILE');

  // A bad flag is a usage error: exit code 2, for commander's own checks (which would use 1) as
  // well as ours. Failures of another kind pass their own exit code.
  const baseError = cmd.error.bind(cmd);
  cmd.error = (message: string, options?: { code?: string; exitCode?: number }): never => {
    const fromCommander = options?.code?.startsWith('commander.') ?? false;
    return baseError(message, { ...options, exitCode: fromCommander ? 2 : (options?.exitCode ?? 2) });
  };

  cmd.action(async (flags: ScheduleFlags) => {
    const cfg: ScheduleConfig = {
      scheduler: flags.scheduler,
      steps: flags.steps,
      warmupSteps: flags.warmupSteps,
      restartWarmupSteps: flags.restartWarmupSteps,
      cycleLength: flags.cycleLength,
      minLrRatio: flags.minLrRatio,
    };
    const warm: WarmStartSchedule = { steps: flags.warmStartSteps, schedule: flags.warmStartSchedule, lrRatio: flags.warmStartLrRatio };
    let report: ScheduleReport;
    try {
      report = warm.steps > 0 ? runScheduleReport(cfg, warm) : scheduleReport(cfg);
    } catch (e) {
      cmd.error(`error: ${(e as Error).message}`, { code: 'relora.invalidOption' });
    }
    const out = cmd.configureOutput().writeOut ?? ((s: string) => process.stdout.write(s));

    if (flags.plot !== undefined) {
      try {
        const svg = await svgLineChart(report.lr_multiplier, {
          title: warm.steps > 0
            ? `${warm.steps} full-rank warm-start updates (${warm.schedule === 'run' ? 'part of a whole-run cosine' : 'own cosine'}), then ${cfg.scheduler}`
            : `${cfg.scheduler} learning-rate schedule`,
          xTitle: 'update u',
          yTitle: warm.steps > 0 ? 'learning rate / low-rank peak' : 'learning-rate multiplier λ(u − 1)',
          xStart: 1,
          markers: report.merges_after,
          markerLabel: 'merge + optimizer reset after this update',
        });
        await writeFile(flags.plot, svg);
      } catch (e) {
        cmd.error(`error: cannot write the plot to ${flags.plot}: ${(e as Error).message}`, {
          code: 'relora.plotFailed',
          exitCode: 1,
        });
      }
    }

    if (flags.json) {
      out(`${JSON.stringify(report)}\n`);
      return;
    }
    const restartNote = cfg.scheduler === 'cosine_restarts' ? '; ┊ marks restarts' : '';
    const lines = [
      `${cfg.scheduler}: ${cfg.steps} updates, warm-up ${cfg.warmupSteps}` +
        (cfg.scheduler === 'cosine_restarts'
          ? `, restart every ${cfg.cycleLength} with warm-up ${cfg.restartWarmupSteps}`
          : '') +
        (cfg.scheduler === 'cosine_restarts' || cfg.scheduler === 'cosine' ? `, min lr ratio ${cfg.minLrRatio}` : '') +
        (warm.steps > 0 ? `; the first ${warm.steps} updates are a full-rank warm start at ${warm.lrRatio}× the peak (${warm.schedule === 'run' ? 'the first part of a cosine over the whole run' : 'a cosine of its own'})` : ''),
      `learning-rate multiplier used by update u (x axis: u)${restartNote}`,
      terminalPlot(report.lr_multiplier, {
        xStart: 1,
        // Each column shows its lowest value so that the one-step drops to 0 stay visible.
        reduce: 'min',
        markers: report.merges_after.map((u) => u - 1),
      }),
      `merges after updates: ${listOrNone(report.merges_after)}`,
      `optimizer resets after updates: ${listOrNone(report.resets_after)}`,
    ];
    if (flags.plot !== undefined) lines.push(`SVG chart written to ${flags.plot}`);
    out(`${lines.join('\n')}\n`);
  });
}
