/**
 * An SVG line chart of server CPU per request against load, one line per server: the
 * whole curve at a glance (bench/curve.svg, written by `make bench`).
 *
 * @module
 */

export interface Series {
  name: string;
  /** One value per category; NaN leaves a gap. */
  values: number[];
  /** Dashed for the runtimes' own sockets, solid for zev. */
  dashed?: boolean;
}

const COLORS = ["#1f77b4", "#1f77b4", "#d62728", "#d62728", "#2ca02c", "#7f7f7f", "#9467bd", "#8c564b"];
const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

/** A line chart over categories, with a logarithmic y axis. */
export function lineChart(title: string, yLabel: string, categories: string[], series: Series[]): string {
  const width = 860, height = 420, left = 70, right = 230, top = 40, bottom = 60;
  const plotW = width - left - right, plotH = height - top - bottom;
  const all = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v) && v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...all)))),
    hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...all))));
  const x = (i: number) => left + (categories.length === 1 ? plotW / 2 : (i * plotW) / (categories.length - 1));
  const y = (v: number) => top + plotH - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotH;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${left}" y="22" font-size="15" font-weight="bold">${escape(title)}</text>`);
  // Grid: each power of ten and its 2x and 5x.
  for (let decade = lo; decade < hi; decade *= 10) {
    for (const m of [1, 2, 5]) {
      const v = decade * m;
      if (v > hi) continue;
      out.push(
        `<line x1="${left}" x2="${left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="${m === 1 ? "#ccc" : "#eee"}"/>`,
      );
      out.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v}</text>`);
    }
  }
  out.push(`<text x="${left - 6}" y="${y(hi) + 4}" text-anchor="end">${hi}</text>`);
  categories.forEach((c, i) => {
    out.push(`<line x1="${x(i)}" x2="${x(i)}" y1="${top}" y2="${top + plotH}" stroke="#eee"/>`);
    out.push(`<text x="${x(i)}" y="${top + plotH + 18}" text-anchor="middle">${escape(c)}</text>`);
  });
  out.push(
    `<text transform="translate(18 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(yLabel)}</text>`,
  );
  out.push(
    `<text x="${left + plotW / 2}" y="${
      height - 12
    }" text-anchor="middle">load (connections × requests per second over all of them)</text>`,
  );
  series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    const points = s.values.map((v, i) => (Number.isFinite(v) && v > 0 ? `${x(i).toFixed(1)},${y(v).toFixed(1)}` : ""))
      .filter((p) => p);
    out.push(
      `<polyline fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ` stroke-dasharray="6 4"` : ""} points="${
        points.join(" ")
      }"/>`,
    );
    for (const p of points) out.push(`<circle cx="${p.split(",")[0]}" cy="${p.split(",")[1]}" r="3" fill="${color}"/>`);
    const ly = top + 10 + k * 20;
    out.push(
      `<line x1="${left + plotW + 20}" x2="${
        left + plotW + 50
      }" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ` stroke-dasharray="6 4"` : ""}/>`,
    );
    out.push(`<text x="${left + plotW + 56}" y="${ly + 4}">${escape(s.name)}</text>`);
  });
  out.push(`</svg>`);
  return out.join("\n") + "\n";
}
