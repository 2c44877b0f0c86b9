// npm run build: type-check, then bundle into dist/ (embedded in `ham` by host/build.rs).
import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Hashed file names under assets/: the host serves them as immutable.
    assetsDir: 'assets',
    target: 'es2022',
    reportCompressedSize: true,
  },
  server: {
    // `npm run dev` against a running `ham` on the default port.
    proxy: { '/api': 'http://127.0.0.1:3001', '/plugins': 'http://127.0.0.1:3001' },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
