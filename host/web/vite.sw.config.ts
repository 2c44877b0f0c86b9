// The service worker, built after the app (npm run build) into dist/sw.js: one
// classic script with lib/pending.ts inlined, served at the root so its scope is
// the whole app.
import { defineConfig } from 'vite';

export default defineConfig({
  publicDir: false,
  build: {
    outDir: 'dist',
    emptyOutDir: false,
    target: 'es2022',
    minify: true,
    reportCompressedSize: false,
    lib: {
      entry: 'src/sw.ts',
      formats: ['iife'],
      name: 'hamServiceWorker',
      fileName: () => 'sw.js',
    },
  },
});
