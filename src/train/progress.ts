/**
 * Progress of a run: a live bar (loss, lr, tokens/s, ETA) on a terminal, plain lines otherwise
 * (logs, CI, pipes).
 */
import cliProgress from 'cli-progress';

export interface ProgressInfo {
  step: number;
  phase: string;
  loss: number;
  lr: number;
  tokensPerS: number;
  merges: number;
}

function fmtEta(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60), sec = Math.round(s % 60);
  return m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

export class Progress {
  private bar: cliProgress.SingleBar | null = null;
  private readonly started = Date.now();
  private lastLine = 0;

  constructor(private readonly total: number, private readonly startStep: number, private readonly write: (s: string) => void, tty = process.stderr.isTTY === true) {
    if (tty) {
      this.bar = new cliProgress.SingleBar({
        format: '{bar} {value}/{total} | {phase} | loss {loss} | lr {lr} | {tps} tok/s | merges {merges} | ETA {etaText}',
        hideCursor: true,
        clearOnComplete: false,
        stream: process.stderr,
        etaBuffer: 20,
      }, cliProgress.Presets.shades_classic);
      this.bar.start(total, startStep, { phase: '', loss: '-', lr: '-', tps: '-', merges: 0, etaText: '?' });
    }
  }

  private eta(step: number): number {
    const done = step - this.startStep;
    const elapsed = (Date.now() - this.started) / 1000;
    return done > 0 ? (elapsed / done) * (this.total - step) : Infinity;
  }

  update(p: ProgressInfo): void {
    const vals = { phase: p.phase, loss: p.loss.toFixed(4), lr: p.lr.toExponential(2), tps: Math.round(p.tokensPerS), merges: p.merges, etaText: fmtEta(this.eta(p.step)) };
    if (this.bar) {
      this.bar.update(p.step, vals);
      return;
    }
    // Plain lines: about every 5% of the run, the first update, and the last.
    const every = Math.max(1, Math.floor(this.total / 20));
    if (p.step === this.startStep + 1 || p.step - this.lastLine >= every || p.step === this.total) {
      this.lastLine = p.step;
      this.write(`step ${p.step}/${this.total} [${vals.phase}] loss ${vals.loss} lr ${vals.lr} ${vals.tps} tok/s merges ${vals.merges} ETA ${vals.etaText}`);
    }
  }

  /** A message that should not be overwritten by the bar. */
  log(s: string): void {
    if (this.bar) {
      this.bar.stop();
      this.write(s);
      const b = this.bar as unknown as { value: number; payload: Record<string, unknown> };
      this.bar.start(this.total, b.value, b.payload);
    } else this.write(s);
  }

  stop(): void {
    this.bar?.stop();
  }
}
