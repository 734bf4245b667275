import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { Hono } from 'hono';

const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'text/javascript; charset=utf-8',
};

/**
 * Interactive API docs (Swagger UI) served from the installed `swagger-ui-dist` package, so they
 * work on an appliance with no internet. Only a fixed list of files is served.
 */
export function createDocsApp(specUrl: string): Hono {
  const require = createRequire(import.meta.url);
  const dir = join(require.resolve('swagger-ui-dist/package.json'), '..');
  const cache = new Map<string, Buffer>();
  const app = new Hono();
  const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgeprov admin API</title>
<link rel="stylesheet" href="docs/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/swagger-ui-standalone-preset.js"></script>
<script>window.ui = SwaggerUIBundle({ url: ${JSON.stringify(specUrl)}, dom_id: '#ui', persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: 'StandaloneLayout' });</script>
</body></html>`;
  app.get('/docs', (c) => {
    c.header('Content-Security-Policy', "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:");
    return c.html(page);
  });
  app.get('/docs/:file', (c) => {
    const file = c.req.param('file');
    const type = ASSETS[file];
    if (!type) return c.notFound();
    let buf = cache.get(file);
    if (!buf) {
      buf = readFileSync(join(dir, file));
      cache.set(file, buf);
    }
    c.header('Content-Type', type);
    c.header('Cache-Control', 'public, max-age=86400');
    return c.body(new Uint8Array(buf));
  });
  return app;
}
