// Draws the app's icons (a white check on the brand gradient) as PNGs in
// public/icons/, with node's zlib only. The PNGs are committed; run this again
// after changing the drawing:
//
//   node scripts/icons.mjs      (from host/web)
//
// `icon-*.png` have rounded corners (purpose "any"); `maskable-*.png` fill the
// square, for launchers that cut their own shape, with the check inside the
// centre circle of 40% radius that every mask keeps.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

const out = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'public/icons');

/** The brand mark's gradient (styles.css `.brand-mark`): top left to bottom right. */
const FROM = [0x4f, 0x46, 0xe5];
const TO = [0x05, 0x96, 0x69];
/** The check, in units of the icon's side. */
const CHECK = [
  [0.28, 0.53],
  [0.44, 0.69],
  [0.74, 0.37],
];
const STROKE = 0.1;
/** Samples per pixel side (anti-aliasing). */
const SAMPLES = 4;

function distanceToSegment(px, py, [ax, ay], [bx, by]) {
  const dx = bx - ax;
  const dy = by - ay;
  const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

function insideRoundedSquare(x, y, radius) {
  const cx = Math.min(Math.max(x, radius), 1 - radius);
  const cy = Math.min(Math.max(y, radius), 1 - radius);
  return Math.hypot(x - cx, y - cy) <= radius;
}

/** RGBA pixels of one icon `size` px square. */
function draw(size, maskable) {
  const pixels = Buffer.alloc(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let cover = 0;
      let white = 0;
      for (let sy = 0; sy < SAMPLES; sy++) {
        for (let sx = 0; sx < SAMPLES; sx++) {
          const u = (x + (sx + 0.5) / SAMPLES) / size;
          const v = (y + (sy + 0.5) / SAMPLES) / size;
          if (!maskable && !insideRoundedSquare(u, v, 0.22)) continue;
          cover++;
          const d = Math.min(distanceToSegment(u, v, CHECK[0], CHECK[1]), distanceToSegment(u, v, CHECK[1], CHECK[2]));
          if (d <= STROKE / 2) white++;
        }
      }
      const n = SAMPLES * SAMPLES;
      const t = (x + y) / (2 * (size - 1));
      const i = (y * size + x) * 4;
      for (let c = 0; c < 3; c++) {
        const base = FROM[c] + (TO[c] - FROM[c]) * t;
        const mixed = cover ? (base * (cover - white) + 255 * white) / cover : 0;
        pixels[i + c] = Math.round(mixed);
      }
      pixels[i + 3] = Math.round((255 * cover) / n);
    }
  }
  return pixels;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A PNG of RGBA `pixels`, 8 bits a channel, no filtering. */
function png(size, pixels) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header[8] = 8; // bit depth
  header[9] = 6; // RGBA
  const rows = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) pixels.copy(rows, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(rows, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

mkdirSync(out, { recursive: true });
for (const size of [192, 512]) {
  for (const maskable of [false, true]) {
    const name = `${maskable ? 'maskable' : 'icon'}-${size}.png`;
    const bytes = png(size, draw(size, maskable));
    writeFileSync(join(out, name), bytes);
    console.log(`public/icons/${name}: ${bytes.length} bytes`);
  }
}
