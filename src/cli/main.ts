/** The `relora` command line: a thin shell over the library. */
import { Command, CommanderError } from 'commander';
import { parseBackendName, setBackend } from '../engine/backend.ts';
import * as bench from './commands/bench.ts';
import * as compare from './commands/compare.ts';
import * as demo from './commands/demo.ts';
import * as doctor from './commands/doctor.ts';
import * as evalCmd from './commands/eval.ts';
import * as exportCmd from './commands/export.ts';
import * as generateCmd from './commands/generate.ts';
import * as info from './commands/info.ts';
import * as report from './commands/report.ts';
import * as schedule from './commands/schedule.ts';
import * as trainCmd from './commands/train.ts';
import { fail, parseIntOption, UsageError } from './errors.ts';

export function buildProgram(): Command {
  const program = new Command('relora')
    .description('Pre-train LLaMA-style language models with ReLoRA')
    .version('0.1.0')
    .option('--backend <name>', 'compute backend: native, js, webgpu or auto (env RELORA_BACKEND; auto never picks webgpu)')
    .option('--threads <n>', 'threads for the native kernels (env RELORA_THREADS)', parseIntOption('--threads'))
    .showHelpAfterError()
    .hook('preAction', (cmd) => {
      const o = cmd.optsWithGlobals() as { backend?: string; threads?: number };
      try {
        const name = parseBackendName(o.backend ?? process.env.RELORA_BACKEND ?? 'auto', o.backend ? '--backend' : 'RELORA_BACKEND');
        setBackend(name, o.threads);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    });
  program.enablePositionalOptions(false);
  doctor.register(program);
  bench.register(program);
  info.register(program);
  report.register(program);
  schedule.register(program);
  trainCmd.register(program);
  evalCmd.register(program);
  compare.register(program);
  exportCmd.register(program);
  generateCmd.register(program);
  demo.register(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
    fail(e);
  }
}
