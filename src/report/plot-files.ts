/** Renders charts to OUT_DIR/plots/<name>.svg and returns their page sections. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderSvg } from './chart.ts';
import { figure } from './html.ts';
import type { Chart } from './run-charts.ts';

/** What writing a report produced. */
export interface ReportFiles {
  /** Path of the HTML file written. */
  html: string;
  /** Paths of the SVG files written, one per chart. */
  plots: string[];
}

/** Writes each chart as plots/<name>.svg under `outDir`; returns the figures in chart order and the files. */
export async function writePlots(outDir: string, charts: readonly Chart[]): Promise<{ figures: string[]; plots: string[] }> {
  const plotDir = join(outDir, 'plots');
  await mkdir(plotDir, { recursive: true });
  const figures: string[] = [];
  const plots: string[] = [];
  for (const c of charts) {
    const svg = await renderSvg(c.spec);
    const file = join(plotDir, `${c.name}.svg`);
    await writeFile(file, svg);
    plots.push(file);
    figures.push(figure(c, svg));
  }
  return { figures, plots };
}
