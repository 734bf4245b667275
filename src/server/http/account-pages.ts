import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Accounts } from '../../domain/accounts.ts';
import { AppError } from '../../errors.ts';
import type { Auditor } from '../../domain/audit.ts';
import { clientIp, type HttpEnv } from './context.ts';

/**
 * The two pages a mailed link opens: activate an invited account, reset a password. Plain HTML
 * forms, no script; the token travels in the form, never in a log line (the access log records the
 * path only), and `Referrer-Policy: no-referrer` keeps it from leaking to anything linked.
 */

const esc = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

const HEADERS = {
  'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
};

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · edgeprov</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}
label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.5rem;font:inherit;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1rem;font:inherit}.err{color:#a00}</style></head>
<body><h1>${esc(title)}</h1>${body}</body></html>
`;
}

const PURPOSES = {
  activate: { title: 'Activate your account', button: 'Activate', done: 'Your account is active.' },
  reset: { title: 'Choose a new password', button: 'Set password', done: 'Your password is changed; every earlier sign-in has ended.' },
} as const;

function form(purpose: keyof typeof PURPOSES, token: string, email: string, problems: string[] = []): string {
  const p = PURPOSES[purpose];
  const errs = problems.length ? `<ul class="err">${problems.map((m) => `<li>${esc(m)}</li>`).join('')}</ul>` : '';
  return page(
    p.title,
    `<p>Account: <strong>${esc(email)}</strong></p>${errs}
<form method="post">
<input type="hidden" name="token" value="${esc(token)}">
<label for="password">New password (at least 10 characters, not a common one)</label>
<input id="password" name="password" type="password" autocomplete="new-password" required minlength="10" maxlength="256">
<label for="confirm">The same again</label>
<input id="confirm" name="confirm" type="password" autocomplete="new-password" required minlength="10" maxlength="256">
<button type="submit">${p.button}</button>
</form>`,
  );
}

export function createAccountPages(accounts: Accounts, auditor: Auditor): Hono<HttpEnv> {
  const app = new Hono<HttpEnv>();
  for (const purpose of ['activate', 'reset'] as const) {
    const path = `/account/${purpose}`;
    app.get(path, async (c) => {
      const token = c.req.query('token') ?? '';
      try {
        const { user } = await accounts.checkLink(token, purpose);
        return c.html(form(purpose, token, user.email), 200, HEADERS);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        return c.html(page(PURPOSES[purpose].title, `<p class="err">This link has expired, was used already, or was replaced by a newer one.</p>`), 400, HEADERS);
      }
    });
    app.post(
      path,
      bodyLimit({ maxSize: 8 * 1024, onError: (c) => c.html(page('Too large', '<p class="err">The form was too large.</p>'), 413, HEADERS) }),
      async (c) => {
        const type = c.req.header('content-type') ?? '';
        if (!type.startsWith('application/x-www-form-urlencoded')) return c.html(page('Unsupported', '<p class="err">Send the form.</p>'), 415, HEADERS);
        const f = new URLSearchParams(await c.req.text());
        const token = f.get('token') ?? '';
        const password = f.get('password') ?? '';
        let email = '';
        try {
          email = (await accounts.checkLink(token, purpose)).user.email;
          if (password !== (f.get('confirm') ?? '')) return c.html(form(purpose, token, email, ['the two passwords differ']), 400, HEADERS);
          const user = await accounts.completeLink(token, purpose, password);
          await auditor.record({
            tenantId: user.tenantId,
            actorId: user.id,
            actor: user.email,
            ip: clientIp(c) || null,
            action: purpose === 'activate' ? 'activateAccount' : 'resetPassword',
            target: path,
            outcome: 'success',
            before: null,
            after: null,
          });
          return c.html(page(PURPOSES[purpose].title, `<p>${PURPOSES[purpose].done} Sign in with <strong>${esc(email)}</strong> and the new password.</p>`), 200, HEADERS);
        } catch (err) {
          if (!(err instanceof AppError)) throw err;
          if (!email) return c.html(page(PURPOSES[purpose].title, `<p class="err">This link has expired, was used already, or was replaced by a newer one.</p>`), 400, HEADERS);
          const problems = err.details?.map((d) => `Password ${d.message}`) ?? [err.message];
          return c.html(form(purpose, token, email, problems), 400, HEADERS);
        }
      },
    );
  }
  return app;
}
