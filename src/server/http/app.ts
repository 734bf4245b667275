import { randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import type { Accounts } from '../../domain/accounts.ts';
import type { Inventory } from '../../domain/inventory.ts';
import type { Logger } from '../../logger.ts';
import type { Store } from '../../store/store.ts';
import { createAdminApi, type AdminApiDeps } from './admin-api.ts';
import { clientIp, type HttpEnv } from './context.ts';
import { createDocsApp } from './docs.ts';
import { createAccountPages } from './account-pages.ts';
import { apiErrorHandler, errorBody } from './errors.ts';

export interface HttpAppDeps extends AdminApiDeps {
  store: Store;
  inventory: Inventory;
  accounts: Accounts;
  logger: Logger;
  /** Logger for access lines (no redaction); the main logger when omitted. */
  accessLogger?: Logger;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,100}$/;

/** The admin HTTP surface: health probes, the admin API and its docs (phones: `device-routes.ts`). */
export function createHttpApp(deps: HttpAppDeps): Hono<HttpEnv> {
  const { logger } = deps;
  const app = new Hono<HttpEnv>();

  // One access line per request. Its fields hold no secrets, so it skips the redaction pass.
  const access = deps.accessLogger ?? logger;
  app.use('*', async (c, next) => {
    const given = c.req.header('x-request-id');
    const requestId = given && REQUEST_ID.test(given) ? given : randomUUID();
    c.set('requestId', requestId);
    // Set before the handler runs: touching the response afterwards would force node-server to
    // build a full Fetch Response for every request.
    c.header('X-Request-Id', requestId);
    const started = performance.now();
    await next();
    if (access.isLevelEnabled('info')) {
      access.info(
        {
          reqId: requestId,
          method: c.req.method,
          path: c.req.path,
          status: c.res.status,
          ms: Math.round((performance.now() - started) * 10) / 10,
          ip: clientIp(c),
        },
        'request',
      );
    }
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    try {
      await deps.store.ping();
      return c.json({ status: 'ready', store: deps.store.kind });
    } catch (err) {
      logger.warn({ err }, 'store not reachable');
      return c.json({ status: 'unavailable', store: deps.store.kind }, 503);
    }
  });

  app.route('/', createAccountPages(deps.accounts, deps.auditor));

  const api = createAdminApi(deps);
  api.route('/', createDocsApp('/api/v1/openapi.json'));
  app.route('/api/v1', api);

  const onError = apiErrorHandler(logger);
  app.onError(onError);
  // The audit trail reads "before" states through `api.request` directly: same boundary there.
  api.onError(onError);
  app.notFound((c) => {
    if (c.req.path.startsWith('/api/')) {
      return c.json(errorBody('not_found', `no route ${c.req.method} ${c.req.path}`, c.get('requestId') ?? ''), 404);
    }
    return c.text('Not Found', 404);
  });
  return app;
}
