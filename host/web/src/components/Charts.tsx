// Plain SVG charts: a year heat-map and a score line. No library: both are a few
// dozen elements, and SVG scales with the layout.
import { dayLabel, heatmapWeeks, monthShort } from '../lib/dates';

export interface HeatCell {
  /** 0 (nothing) … 1 (target met); null = skipped. */
  level: number | null;
  label: string;
}

export function Heatmap({ today, color, cells, weeks = 53 }: { today: string; color: string; cells: Map<string, HeatCell>; weeks?: number }) {
  const grid = heatmapWeeks(today, weeks);
  const size = 11;
  const gap = 2;
  const left = 16;
  const top = 14;
  const width = left + weeks * (size + gap);
  const height = top + 7 * (size + gap);
  let lastMonth = '';
  return (
    <svg className="heatmap" viewBox={`0 0 ${width} ${height}`} role="img" aria-label="Check-ins over the last year">
      {grid.map((column, w) => {
        const first = column[0];
        let monthLabel = null;
        // A month is labelled above the week its first day falls in.
        if (first && Number(first.slice(8)) <= 7) {
          const m = monthShort(first);
          if (m !== lastMonth) {
            lastMonth = m;
            if (w < weeks - 1) monthLabel = (
              <text x={left + w * (size + gap)} y={10} className="chart-label">
                {m}
              </text>
            );
          }
        }
        return (
          <g key={w}>
            {monthLabel}
            {column.map((date, d) => {
              if (!date) return null;
              const cell = cells.get(date);
              const x = left + w * (size + gap);
              const y = top + d * (size + gap);
              const title = `${dayLabel(date)}: ${cell ? cell.label : 'nothing'}`;
              if (cell && cell.level === null) {
                return (
                  <rect key={d} x={x} y={y} width={size} height={size} rx={2} className="heat-skipped">
                    <title>{title}</title>
                  </rect>
                );
              }
              const level = cell?.level ?? 0;
              return (
                <rect key={d} x={x} y={y} width={size} height={size} rx={2} className={level > 0 ? undefined : 'heat-empty'} fill={level > 0 ? color : undefined} fillOpacity={level > 0 ? 0.25 + 0.75 * Math.min(1, level) : undefined}>
                  <title>{title}</title>
                </rect>
              );
            })}
          </g>
        );
      })}
      {['Mon', 'Wed', 'Fri'].map((d, i) => (
        <text key={d} x={0} y={top + (i * 2 + 1) * (size + gap) - 3} className="chart-label">
          {d[0]}
        </text>
      ))}
    </svg>
  );
}

/** A line of values in 0..1 over dates (the habit score). */
export function ScoreChart({ points, color }: { points: { date: string; value: number }[]; color: string }) {
  const width = 600;
  const height = 160;
  const pad = { l: 34, r: 8, t: 8, b: 22 };
  if (points.length === 0) return <p className="muted">No score yet.</p>;
  const n = points.length;
  const x = (i: number) => pad.l + (n === 1 ? 0 : (i / (n - 1)) * (width - pad.l - pad.r));
  const y = (v: number) => pad.t + (1 - Math.max(0, Math.min(1, v))) * (height - pad.t - pad.b);
  const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(p.value).toFixed(1)}`).join('');
  const first = points[0];
  const last = points[n - 1];
  return (
    <svg className="score-chart" viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`Score over time, now ${Math.round((last?.value ?? 0) * 100)}%`}>
      {[0, 0.5, 1].map((v) => (
        <g key={v}>
          <line x1={pad.l} x2={width - pad.r} y1={y(v)} y2={y(v)} className="grid-line" />
          <text x={pad.l - 6} y={y(v) + 4} textAnchor="end" className="chart-label">
            {v * 100}%
          </text>
        </g>
      ))}
      <path d={d} fill="none" stroke={color} strokeWidth={2} strokeLinejoin="round" />
      {first && (
        <text x={pad.l} y={height - 6} className="chart-label">
          {dayLabel(first.date)}
        </text>
      )}
      {last && n > 1 && (
        <text x={width - pad.r} y={height - 6} textAnchor="end" className="chart-label">
          {dayLabel(last.date)}
        </text>
      )}
    </svg>
  );
}
