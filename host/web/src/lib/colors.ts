// Habit colours that stay readable: WCAG relative luminance and contrast, the
// palette offered in the habit form, and the glyph colour for text drawn on any
// habit colour (custom ones too).

/** Relative luminance of `#rrggbb` (WCAG 2). */
export function luminance(hex: string): number {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex.trim());
  if (!m) return 0;
  const n = m[1]!;
  const [r, g, b] = [0, 2, 4].map((i) => {
    const c = parseInt(n.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  }) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** Contrast ratio of two colours, 1..21. */
export function contrast(a: string, b: string): number {
  const [x, y] = [luminance(a), luminance(b)];
  return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
}

/**
 * White or black, whichever reads better on `background`. One of the two always
 * reaches 4.5:1 (AA for text), so a glyph on any habit colour is readable.
 */
export function glyphOn(background: string): '#ffffff' | '#000000' {
  return contrast('#ffffff', background) >= contrast('#000000', background) ? '#ffffff' : '#000000';
}

/**
 * The palette: white text on each is at least 4.5:1, and each stands 3:1 or more
 * apart from the dark theme's surface (#111827), so a done day reads as done in
 * both themes.
 */
export const PALETTE: { color: string; name: string }[] = [
  { color: '#5b54e8', name: 'Indigo' },
  { color: '#0e7490', name: 'Teal' },
  { color: '#047857', name: 'Green' },
  { color: '#4d7c0f', name: 'Olive' },
  { color: '#b45309', name: 'Amber' },
  { color: '#dc2626', name: 'Red' },
  { color: '#db2777', name: 'Pink' },
  { color: '#7c3aed', name: 'Violet' },
];
