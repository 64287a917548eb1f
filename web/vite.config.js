// Bundles the pages at build time (./deploy/fls build): web/dist/<page>.html and hashed assets
// under web/dist/assets, which the server serves at /<page> and /app/assets/ (server/web_routes.h).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/app/',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    sourcemap: false,
    // No inline script or style: the pages' Content-Security-Policy allows only our own files.
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    modulePreload: { polyfill: false },
    rollupOptions: {
      input: {
        dashboard: fileURLToPath(new URL('dashboard.html', import.meta.url)),
        app: fileURLToPath(new URL('app.html', import.meta.url)),
      },
    },
  },
});
