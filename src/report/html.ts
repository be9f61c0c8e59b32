/**
 * The HTML of a report page: escaping, tables, figures and the page frame. The page is
 * self-contained (inline SVG, inline style, no scripts), so it opens offline.
 */
import type { Chart } from './run-charts.ts';

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** Nested objects become dotted keys so that a config reads as one flat table. */
export function flatten(obj: Record<string, unknown>, prefix = ''): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length > 0) {
      out.push(...flatten(v as Record<string, unknown>, key));
    } else {
      out.push([key, v]);
    }
  }
  return out;
}

/** A cell's text: strings as they are, numbers to six significant digits, '—' for no value. */
export function formatValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
  if (v === undefined) return '—';
  return JSON.stringify(v);
}

export function table(head: string[], rows: unknown[][], cls = ''): string {
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(formatValue(c))}</td>`).join('')}</tr>`).join('\n');
  return `<table${cls ? ` class="${cls}"` : ''}><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** A key/value table of a JSON object (nested keys dotted), or `missing` as a note. */
export function keyValueTable(obj: Record<string, unknown> | undefined, missing: string): string {
  if (obj === undefined) return note(missing);
  const rows = flatten(obj);
  if (rows.length === 0) return note('(empty)');
  return table(['key', 'value'], rows, 'kv');
}

export const note = (text: string): string => `<p class="note">${escapeHtml(text)}</p>`;

/** A section that stands where a chart would be, saying why there is none. */
export const noChart = (heading: string, why: string): string => `<h2>${escapeHtml(heading)}</h2>\n${note(why)}`;

/**
 * Vega numbers its clip paths and gradients from 1 in every SVG; inlined side by side those ids
 * would collide and one chart would clip to another's rectangle.
 */
export function scopeIds(svg: string, scope: string): string {
  return svg.replace(/\bid="([^"]+)"/g, `id="${scope}-$1"`).replace(/url\(#([^)]+)\)/g, `url(#${scope}-$1)`);
}

/** A chart's section: heading, the SVG inline, the caption and a link to the SVG file. */
export function figure(chart: Chart, svg: string): string {
  return `<h2>${escapeHtml(chart.heading)}</h2>\n<figure id="${chart.name}">${scopeIds(svg, chart.name)}\n` +
    `<figcaption>${escapeHtml(chart.caption)} (<a href="plots/${chart.name}.svg">SVG</a>)</figcaption></figure>`;
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; max-width: 960px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta, .note, figcaption { color: #666; }
figure { margin: 1em 0; }
figure svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td { font-variant-numeric: tabular-nums; }
table.kv td:first-child { font-family: ui-monospace, monospace; }
table.kv td:last-child { word-break: break-word; }
code { font-family: ui-monospace, monospace; }
`;

/** The whole document. `subtitle` is HTML (the caller escapes what it puts in). */
export function page(title: string, subtitle: string, sections: string[]): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="meta">${subtitle}</p>
${sections.join('\n')}
</body>
</html>
`;
}
