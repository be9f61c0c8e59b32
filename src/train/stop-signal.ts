/**
 * SIGINT / SIGTERM during a run. What the first signal does depends on where the run is:
 *
 * - setup (config, data, model; no update made yet): there is nothing to save, so the process
 *   exits at once with 130 / 143; `--resume` starts such a run again from update 0;
 * - training: the loop finishes the update it is in, saves a checkpoint and stops; the command
 *   then exits with 130 / 143;
 * - finishing (after the last update: final evaluation, rank measurement, last checkpoint,
 *   summary, report): the run is complete, so it is finished as usual and the command exits 0
 *   with a note that the run had already finished.
 *
 * A second signal exits at once: checkpoints and run files are written to temporary names and
 * renamed into place, so whatever was complete stays valid. Handlers run only between native
 * calls (the addon blocks signals while its kernels run), so no kernel is cut off midway.
 */
export type StopSignalName = 'SIGINT' | 'SIGTERM';

export type RunStage = 'setup' | 'training' | 'finishing';

/** The shell convention for "ended by a signal": 128 + its number. */
export const SIGNAL_EXIT_CODES: Record<StopSignalName, number> = { SIGINT: 130, SIGTERM: 143 };

export class StopSignal {
  private received: StopSignalName | null = null;
  private receivedIn: RunStage | null = null;
  private current: RunStage = 'setup';
  private readonly handlers: [StopSignalName, () => void][] = [];

  constructor(private readonly log: (s: string) => void) {}

  /** The signal that asked the run to stop, if any. */
  get requested(): StopSignalName | null {
    return this.received;
  }

  /** The stage the run was in when the signal arrived. */
  get requestedIn(): RunStage | null {
    return this.receivedIn;
  }

  get stage(): RunStage {
    return this.current;
  }

  /** Tell the handler where the run is now. */
  enter(stage: RunStage): void {
    this.current = stage;
  }

  get installed(): boolean {
    return this.handlers.length > 0;
  }

  install(): void {
    if (this.installed) return;
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      const handler = () => this.onSignal(sig);
      process.on(sig, handler);
      this.handlers.push([sig, handler]);
    }
  }

  uninstall(): void {
    for (const [sig, handler] of this.handlers.splice(0)) process.off(sig, handler);
  }

  private onSignal(sig: StopSignalName): void {
    if (this.received) {
      this.log(`\n${sig} received again: exiting without saving (the last complete checkpoint is intact)`);
      process.exit(SIGNAL_EXIT_CODES[sig]);
    }
    this.received = sig;
    this.receivedIn = this.current;
    switch (this.current) {
      case 'setup':
        this.log(`\n${sig} received before the first update: nothing to save, exiting`);
        process.exit(SIGNAL_EXIT_CODES[sig]);
        break;
      case 'training':
        this.log(`\n${sig} received: finishing this update, saving a checkpoint and exiting (send it again to exit at once)`);
        break;
      case 'finishing':
        this.log(`\n${sig} received after the last update: the run has finished, writing its summary and report (send it again to exit at once)`);
        break;
    }
  }
}
