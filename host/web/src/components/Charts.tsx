// Plain SVG charts drawn at their real pixel size (never scaled down), so labels
// stay at least 11 px on a 360 px phone: a year heat-map that opens at today and
// scrolls back, a score line that fits its box, and a score ring.
import { useLayoutEffect, useRef } from 'react';
import { dayLabel, heatmapWeeks, monthShort } from '../lib/dates';
import { percent } from '../lib/format';
import { useWidth } from '../lib/useWidth';

export interface HeatCell {
  /** 0 (nothing) … 1 (target met); null = skipped. */
  level: number | null;
  label: string;
}

const CELL = 13;
const GAP = 3;

export function Heatmap({ today, color, cells, weeks = 53 }: { today: string; color: string; cells: Map<string, HeatCell>; weeks?: number }) {
  const scroller = useRef<HTMLDivElement | null>(null);
  // Open at today (the right end); older weeks are a scroll to the left.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el) el.scrollLeft = el.scrollWidth;
  }, [today]);
  const grid = heatmapWeeks(today, weeks);
  const left = 22;
  const top = 18;
  const width = left + weeks * (CELL + GAP);
  const height = top + 7 * (CELL + GAP);
  let lastMonth = '';
  return (
    <>
      <div className="heatmap-scroll" ref={scroller} tabIndex={0} role="region" aria-label="Heat-map of the last year; scroll left for older weeks">
        <svg className="heatmap" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img" aria-label="Check-ins over the last year">
          {grid.map((column, w) => {
            const first = column[0];
            let monthLabel = null;
            // A month is labelled above the week its first day falls in.
            if (first && Number(first.slice(8)) <= 7) {
              const m = monthShort(first);
              if (m !== lastMonth) {
                lastMonth = m;
                if (w < weeks - 1)
                  monthLabel = (
                    <text x={left + w * (CELL + GAP)} y={12} className="chart-label">
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
                  const x = left + w * (CELL + GAP);
                  const y = top + d * (CELL + GAP);
                  const title = `${dayLabel(date)}: ${cell ? cell.label : 'nothing'}`;
                  if (cell && cell.level === null) {
                    return (
                      <rect key={d} x={x} y={y} width={CELL} height={CELL} rx={2} className="heat-skipped">
                        <title>{title}</title>
                      </rect>
                    );
                  }
                  const level = cell?.level ?? 0;
                  return (
                    <rect key={d} x={x} y={y} width={CELL} height={CELL} rx={2} className={level > 0 ? 'heat-on' : 'heat-empty'} fill={level > 0 ? color : undefined} fillOpacity={level > 0 ? 0.3 + 0.7 * Math.min(1, level) : undefined}>
                      <title>{title}</title>
                    </rect>
                  );
                })}
              </g>
            );
          })}
          {['Mon', 'Wed', 'Fri'].map((d, i) => (
            <text key={d} x={0} y={top + (i * 2) * (CELL + GAP) + CELL - 2} className="chart-label">
              {d[0]}
            </text>
          ))}
        </svg>
      </div>
      <div className="legend" aria-hidden="true">
        <span>Less</span>
        <span className="legend-cell heat-empty-swatch" />
        {[0.35, 0.65, 1].map((o) => (
          <span key={o} className="legend-cell" style={{ background: color, opacity: 0.3 + 0.7 * o }} />
        ))}
        <span>More</span>
        <span className="legend-cell heat-skipped-swatch" />
        <span>Skipped</span>
      </div>
      <p className="visually-hidden">Darker days met more of the goal; hatched days were skipped.</p>
    </>
  );
}

/** A line of values in 0..1 over dates (the habit score), as wide as its box. */
export function ScoreChart({ points, color }: { points: { date: string; value: number }[]; color: string }) {
  const box = useRef<HTMLDivElement | null>(null);
  const width = Math.max(240, useWidth(box, 600));
  const height = 190;
  const pad = { l: 44, r: 10, t: 10, b: 28 };
  const n = points.length;
  const x = (i: number) => pad.l + (n <= 1 ? 0 : (i / (n - 1)) * (width - pad.l - pad.r));
  const y = (v: number) => pad.t + (1 - Math.max(0, Math.min(1, v))) * (height - pad.t - pad.b);
  const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(p.value).toFixed(1)}`).join('');
  const first = points[0];
  const last = points[n - 1];
  const middle = n > 2 && width >= 360 ? points[Math.floor((n - 1) / 2)] : undefined;
  return (
    <div ref={box} className="score-chart-box">
      {n === 0 ? (
        <p className="muted">No score yet.</p>
      ) : (
        <svg className="score-chart" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`Score over time, now ${percent(last?.value ?? 0)}`}>
          {[0, 0.5, 1].map((v) => (
            <g key={v}>
              <line x1={pad.l} x2={width - pad.r} y1={y(v)} y2={y(v)} className="grid-line" />
              <text x={pad.l - 6} y={y(v) + 4} textAnchor="end" className="chart-label">
                {v * 100}%
              </text>
            </g>
          ))}
          <path d={d} fill="none" stroke={color} strokeWidth={2.5} strokeLinejoin="round" />
          {first && (
            <text x={pad.l} y={height - 8} className="chart-label">
              {dayLabel(first.date)}
            </text>
          )}
          {middle && (
            <text x={x(Math.floor((n - 1) / 2))} y={height - 8} textAnchor="middle" className="chart-label">
              {dayLabel(middle.date)}
            </text>
          )}
          {last && n > 1 && (
            <text x={width - pad.r} y={height - 8} textAnchor="end" className="chart-label">
              {dayLabel(last.date)}
            </text>
          )}
        </svg>
      )}
    </div>
  );
}

/** The score as a ring, its percentage in the middle. */
export function ScoreRing({ score, color, size = 64 }: { score: number; color: string; size?: number }) {
  const r = size / 2 - 5;
  const c = 2 * Math.PI * r;
  const v = Math.max(0, Math.min(1, score));
  return (
    <svg className="score-ring" width={size} height={size} viewBox={`0 0 ${size} ${size}`} aria-hidden="true">
      <circle cx={size / 2} cy={size / 2} r={r} className="ring-track" strokeWidth={7} fill="none" />
      <circle cx={size / 2} cy={size / 2} r={r} stroke={color} strokeWidth={7} fill="none" strokeDasharray={`${(c * v).toFixed(2)} ${c.toFixed(2)}`} strokeLinecap={v > 0 ? 'round' : 'butt'} transform={`rotate(-90 ${size / 2} ${size / 2})`} />
      <text x="50%" y="50%" dominantBaseline="central" textAnchor="middle" className="ring-text">
        {percent(v)}
      </text>
    </svg>
  );
}
