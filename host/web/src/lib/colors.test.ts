import { describe, expect, it } from 'vitest';
import { contrast, glyphOn, PALETTE } from './colors';

describe('habit colours', () => {
  it('carry white glyphs at AA (4.5:1) and stand 3:1 off both backgrounds', () => {
    for (const { color } of PALETTE) {
      expect(contrast('#ffffff', color)).toBeGreaterThanOrEqual(4.5);
      expect(contrast(color, '#f8fafc')).toBeGreaterThanOrEqual(3);
      expect(contrast(color, '#111827')).toBeGreaterThanOrEqual(3);
    }
  });

  it('pick a readable glyph on any colour, old palette included', () => {
    for (const c of ['#059669', '#0891b2', '#d97706', '#65a30d', '#4f46e5', '#ffff00', '#000080', '#777777']) {
      expect(contrast(glyphOn(c), c)).toBeGreaterThanOrEqual(4.5);
    }
    expect(glyphOn('#d97706')).toBe('#000000');
    expect(glyphOn('#5b54e8')).toBe('#ffffff');
  });
});
