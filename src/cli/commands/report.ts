/**
 * `relora report RUN_DIR`: writes RUN_DIR/report.html (self-contained, opens offline) and the
 * same charts as RUN_DIR/plots/*.svg, from the run folder's metrics.jsonl, config.json and
 * summary.json.
 */
import { dirname, relative } from 'node:path';
import type { Command } from 'commander';
import { writeRunReport } from '../../report/run-report.ts';

/** A path as short as it can be written from the current folder. */
function shortPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== '' && !rel.startsWith('..') ? rel : path;
}

export function register(program: Command): void {
  const cmd: Command = program
    .command('report')
    .description('write report.html and plots/*.svg into a run folder, from its metrics.jsonl')
    .argument('<run-dir>', 'run folder holding metrics.jsonl (config.json and summary.json are shown when present)')
    .action(async (runDir: string) => {
      // Errors (no such folder, no metrics.jsonl, malformed JSON) propagate to the CLI's handler.
      const { html, plots } = await writeRunReport(runDir);
      const out = cmd.configureOutput().writeOut ?? ((s: string) => process.stdout.write(s));
      out(`report written to ${shortPath(html)}\n`);
      if (plots.length > 0) out(`${plots.length} SVG charts in ${shortPath(dirname(plots[0]))}\n`);
    });
}
