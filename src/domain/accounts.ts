import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Clock } from '../clock.ts';
import { AppError, conflict, invalid, notFound } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Mailer } from '../mail/mailer.ts';
import type { AccountLink, Store } from '../store/store.ts';
import { FailureCounter } from './throttle.ts';
import { hashPassword, needsRehash, passwordProblems, verifyPassword } from './passwords.ts';
import { canGrant, type Role } from './roles.ts';
import type { TokenCreate, UserCreate, UserUpdate } from './schemas.ts';
import type { Page, PageRequest, Token, User } from './types.ts';
import { CappedMap } from '../capped-map.ts';

/** Who is calling, as established from a bearer token. */
export interface Principal {
  userId: string;
  email: string;
  role: Role;
  /** The user's tenant; `null` for a system administrator. */
  tenantId: string | null;
  /** A token limited to one tenant reaches only that one. */
  scopeTenantId: string | null;
  tokenId: string;
}

export interface AccountsOptions {
  store: Store;
  clock: Clock;
  scryptCost: number;
  sessionTtlSeconds: number;
  maxFailures: number;
  lockoutSeconds: number;
  /** Sends invitations and reset links; without one, inviting and resetting are refused. */
  mailer?: Mailer;
  /** Base URL of the links in mail (`https://prov.example:8443`), read when a mail is written. */
  linkBase?: () => string;
  /** @default 72 */
  activationHours?: number;
  /** @default 60 */
  resetMinutes?: number;
  logger?: Logger;
}

/** What a mailed link is for, and the page that takes it. */
const LINK_PAGES = { activate: '/account/activate', reset: '/account/reset' } as const;

const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** Users, sign-in, sessions and API tokens. */
export class Accounts {
  readonly #accountFailures: FailureCounter;
  readonly #sourceFailures: FailureCounter;
  readonly #touched = new CappedMap<string, number>(50_000);
  // Verifying against a dummy hash keeps sign-in time the same whether an email exists or not.
  #dummyHash: Promise<string> | undefined;

  constructor(private readonly opts: AccountsOptions) {
    this.#accountFailures = new FailureCounter(opts.maxFailures, opts.lockoutSeconds * 1000);
    // One address may be a whole office behind NAT: it gets more tries than one account.
    this.#sourceFailures = new FailureCounter(opts.maxFailures * 5, opts.lockoutSeconds * 1000);
  }

  private get store(): Store {
    return this.opts.store;
  }

  private now(): Date {
    return this.opts.clock.now();
  }

  private checkPolicy(password: string, path = 'password', email?: string): void {
    const problems = passwordProblems(password, email ? { email } : {});
    if (problems.length) throw invalid(problems.map((message) => ({ path, message })), 'password does not meet the policy');
  }

  /** Creates the first system administrator; refuses when one exists. */
  async init(input: { email: string; password: string; name?: string }): Promise<User> {
    this.checkPolicy(input.password);
    const hash = await hashPassword(input.password, this.opts.scryptCost);
    return this.store.transaction(async (tx) => {
      if ((await tx.users.countByRole('system-admin')) > 0) {
        throw conflict('a system administrator already exists; sign in as them to add users');
      }
      const now = this.now().toISOString();
      const id = randomUUID();
      await tx.users.insert({
        id,
        tenantId: null,
        email: input.email.toLowerCase(),
        name: input.name ?? '',
        role: 'system-admin',
        disabled: false,
        activated: true,
        passwordHash: hash,
        passwordChangedAt: now,
        createdAt: now,
        updatedAt: now,
      });
      return (await tx.users.get(null, id)) as User;
    });
  }

  /** Exchanges email and password for a session token. Throttled per account and per source. */
  async signIn(email: string, password: string, source: string): Promise<{ token: string; expiresAt: string; user: User }> {
    const now = this.now().getTime();
    const accountKey = `a:${email.toLowerCase()}`;
    const sourceKey = `s:${source}`;
    const wait = Math.max(this.#accountFailures.blockedFor(accountKey, now), this.#sourceFailures.blockedFor(sourceKey, now));
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      throw new AppError('rate_limited', `too many failed sign-ins; try again in ${seconds} s`, {
        headers: { 'Retry-After': String(seconds) },
      });
    }
    const user = await this.store.users.getWithSecretByEmail(email);
    this.#dummyHash ??= hashPassword(randomBytes(16).toString('hex'), this.opts.scryptCost);
    const ok = await verifyPassword(password, user?.passwordHash ?? (await this.#dummyHash));
    // A tenant marked for deletion is gone for its users too.
    const gone = user?.tenantId ? !(await this.store.tenants.get(user.tenantId)) : false;
    if (!user || !ok || user.disabled || !user.passwordHash || gone) {
      this.#accountFailures.fail(accountKey, now);
      this.#sourceFailures.fail(sourceKey, now);
      throw new AppError('unauthorized', 'wrong email or password');
    }
    this.#accountFailures.clear(accountKey);
    if (needsRehash(user.passwordHash, this.opts.scryptCost)) {
      await this.store.users.update(user.tenantId, user.id, { passwordHash: await hashPassword(password, this.opts.scryptCost) });
    }
    const expiresAt = new Date(now + this.opts.sessionTtlSeconds * 1000).toISOString();
    const token = await this.issue(user.id, null, 'session', 'sign-in', expiresAt);
    const { passwordHash: _h, passwordChangedAt: _c, ...pub } = user;
    return { token, expiresAt, user: pub };
  }

  private async issue(userId: string, tenantId: string | null, kind: 'session' | 'api', name: string, expiresAt: string | null): Promise<string> {
    const prefix = kind === 'session' ? 'eps_' : 'ept_';
    const token = `${prefix}${randomBytes(32).toString('base64url')}`;
    await this.store.tokens.insert({
      id: randomUUID(),
      userId,
      tenantId,
      kind,
      name,
      tokenHash: hashToken(token),
      createdAt: this.now().toISOString(),
      expiresAt,
      lastUsedAt: null,
      revokedAt: null,
    });
    return token;
  }

  /** The caller behind a bearer token, or `undefined` when it is unknown, expired or revoked. */
  async authenticate(bearer: string): Promise<Principal | undefined> {
    if (!/^ep[st]_[A-Za-z0-9_-]{43}$/.test(bearer)) return undefined;
    const row = await this.store.tokens.findByHash(hashToken(bearer));
    const now = this.now();
    if (!row || row.revokedAt || (row.expiresAt && row.expiresAt <= now.toISOString())) return undefined;
    const user = await this.store.users.getWithSecretById(row.userId);
    if (!user || user.disabled) return undefined;
    if (user.tenantId && !(await this.store.tenants.get(user.tenantId))) return undefined;
    const last = this.#touched.get(row.id) ?? 0;
    if (now.getTime() - last > 60_000) {
      this.#touched.set(row.id, now.getTime());
      await this.store.tokens.touch(row.id, now.toISOString());
    }
    return {
      userId: user.id,
      email: user.email,
      role: user.role,
      tenantId: user.tenantId,
      scopeTenantId: row.tenantId,
      tokenId: row.id,
    };
  }

  /** Ends the session or revokes the token the caller used. */
  async signOut(p: Principal): Promise<void> {
    await this.store.tokens.revoke(p.tokenId, this.now().toISOString());
  }

  // ---- API tokens ----------------------------------------------------------------------------

  async createApiToken(p: Principal, tenantId: string, input: TokenCreate): Promise<{ token: string; info: Token }> {
    const expiresAt = input.expiresInDays ? new Date(this.now().getTime() + input.expiresInDays * 86_400_000).toISOString() : null;
    const token = await this.issue(p.userId, tenantId, 'api', input.name, expiresAt);
    const row = await this.store.tokens.findByHash(hashToken(token));
    const { tokenHash: _h, ...info } = row as NonNullable<typeof row>;
    return { token, info };
  }

  private managesTokens(p: Principal): boolean {
    return p.role === 'system-admin' || p.role === 'tenant-admin';
  }

  listApiTokens(p: Principal, tenantId: string): Promise<Token[]> {
    return this.store.tokens.list(tenantId, this.managesTokens(p) ? undefined : p.userId);
  }

  async revokeApiToken(p: Principal, tenantId: string, id: string): Promise<void> {
    const t = await this.store.tokens.get(tenantId, id);
    // Somebody else's token is as invisible as a missing one to a non-admin.
    if (!t || (!this.managesTokens(p) && t.userId !== p.userId)) throw notFound('token');
    await this.store.tokens.revoke(id, this.now().toISOString());
  }

  // ---- users ---------------------------------------------------------------------------------

  /**
   * Creates a user of the tenant. With a password, the account is ready at once; without one, the
   * user is invited: an activation link (single use, expiring) goes to their email, and the account
   * cannot sign in until they follow it and choose a password.
   */
  async createUser(p: Principal, tenantId: string, input: UserCreate): Promise<User> {
    if (input.role === 'system-admin' || !canGrant(p.role, input.role)) {
      throw invalid([{ path: 'role', message: `role ${input.role} cannot be given to a tenant's user` }]);
    }
    if (input.password !== undefined) this.checkPolicy(input.password, 'password', input.email);
    else if (!this.opts.mailer) throw invalid([{ path: 'password', message: 'required: this server cannot send invitations' }]);
    const hash = input.password !== undefined ? await hashPassword(input.password, this.opts.scryptCost) : null;
    const user = await this.store.transaction(async (tx) => {
      if (await tx.users.getWithSecretByEmail(input.email)) {
        throw conflict('a user with this email already exists', [{ path: 'email', message: 'already registered' }]);
      }
      const now = this.now().toISOString();
      const id = randomUUID();
      await tx.users.insert({
        id,
        tenantId,
        email: input.email,
        name: input.name ?? '',
        role: input.role,
        disabled: false,
        activated: hash !== null,
        passwordHash: hash,
        passwordChangedAt: hash ? now : null,
        createdAt: now,
        updatedAt: now,
      });
      return (await tx.users.get(tenantId, id)) as User;
    });
    if (hash === null) await this.sendLink(user, 'activate');
    return user;
  }

  /** Sends a new invitation to a user who has not activated their account yet. */
  async resendInvitation(tenantId: string, id: string): Promise<User> {
    const u = await this.store.users.getWithSecretById(id);
    if (!u || u.tenantId !== tenantId) throw notFound('user');
    if (u.passwordHash) throw conflict('this user has activated their account already; they can reset their password instead');
    if (!this.opts.mailer) throw new AppError('unavailable', 'this server cannot send mail');
    const { passwordHash: _h, passwordChangedAt: _c, ...pub } = u;
    await this.sendLink(pub, 'activate');
    return pub;
  }

  /** Writes a new single-use link for the user (ending their older ones) and mails it. */
  private async sendLink(user: User, purpose: AccountLink['purpose']): Promise<void> {
    const mailer = this.opts.mailer;
    if (!mailer) throw new AppError('unavailable', 'this server cannot send mail');
    const token = randomBytes(32).toString('base64url');
    const now = this.now();
    const ttlMs = purpose === 'activate' ? (this.opts.activationHours ?? 72) * 3_600_000 : (this.opts.resetMinutes ?? 60) * 60_000;
    await this.store.links.revokeForUser(user.id, now.toISOString());
    await this.store.links.insert({
      id: randomUUID(),
      userId: user.id,
      purpose,
      tokenHash: hashToken(token),
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + ttlMs).toISOString(),
      usedAt: null,
    });
    const link = `${(this.opts.linkBase?.() ?? '').replace(/\/+$/, '')}${LINK_PAGES[purpose]}?token=${token}`;
    const valid = purpose === 'activate' ? `${this.opts.activationHours ?? 72} hours` : `${this.opts.resetMinutes ?? 60} minutes`;
    const hello = user.name ? `Hello ${user.name},` : 'Hello,';
    const mail =
      purpose === 'activate'
        ? {
            subject: 'Your edgeprov account',
            text: `${hello}\n\nAn administrator created an edgeprov account for ${user.email}.\nChoose your password here to activate it:\n\n${link}\n\nThe link works once, for ${valid}.\n`,
          }
        : {
            subject: 'Reset your edgeprov password',
            text: `${hello}\n\nSomebody asked to reset the password of the edgeprov account ${user.email}.\nChoose a new password here:\n\n${link}\n\nThe link works once, for ${valid}. If you did not ask for it, ignore this mail: your password stays as it is.\n`,
          };
    await mailer.send({ to: user.email, ...mail });
  }

  /**
   * Starts a password reset. The answer is the same whether the email is registered or not, and
   * takes the same time: the mail is sent after the caller has its answer.
   */
  async requestPasswordReset(email: string, source: string): Promise<void> {
    const now = this.now().getTime();
    const sourceKey = `r:${source}`;
    const accountKey = `ra:${email.toLowerCase()}`;
    const wait = Math.max(this.#sourceFailures.blockedFor(sourceKey, now), this.#accountFailures.blockedFor(accountKey, now));
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      throw new AppError('rate_limited', `too many reset requests; try again in ${seconds} s`, { headers: { 'Retry-After': String(seconds) } });
    }
    // Every request counts, so nobody can flood an inbox or probe many addresses.
    this.#sourceFailures.fail(sourceKey, now);
    this.#accountFailures.fail(accountKey, now);
    if (!this.opts.mailer) throw new AppError('unavailable', 'this server cannot send mail');
    void (async () => {
      const u = await this.store.users.getWithSecretByEmail(email);
      if (!u || u.disabled) return;
      const { passwordHash: _h, passwordChangedAt: _c, ...pub } = u;
      await this.sendLink(pub, 'reset');
    })().catch((err: unknown) => this.opts.logger?.error({ err }, 'could not send a password reset mail'));
  }

  /** The user a link belongs to, if it is valid for `purpose` now (used ones and expired ones are not). */
  async checkLink(token: string, purpose: AccountLink['purpose']): Promise<{ link: AccountLink; user: User }> {
    const bad = () => invalid([{ path: 'token', message: 'this link is not valid: it has expired, was used already, or was replaced by a newer one' }], 'invalid or expired link');
    if (!/^[A-Za-z0-9_-]{43}$/.test(token)) throw bad();
    const link = await this.store.links.findByHash(hashToken(token));
    if (!link || link.purpose !== purpose || link.usedAt || link.expiresAt <= this.now().toISOString()) throw bad();
    const u = await this.store.users.getWithSecretById(link.userId);
    if (!u || u.disabled) throw bad();
    const { passwordHash: _h, passwordChangedAt: _c, ...pub } = u;
    return { link, user: pub };
  }

  /** Follows an activation or reset link: sets the password, uses the link up, ends every session. */
  async completeLink(token: string, purpose: AccountLink['purpose'], password: string): Promise<User> {
    const { link, user } = await this.checkLink(token, purpose);
    this.checkPolicy(password, 'password', user.email);
    const hash = await hashPassword(password, this.opts.scryptCost);
    const now = this.now().toISOString();
    await this.store.transaction(async (tx) => {
      if (!(await tx.links.consume(link.id, now))) throw invalid([{ path: 'token', message: 'this link was used already' }], 'invalid or expired link');
      await tx.users.update(user.tenantId, user.id, { passwordHash: hash, passwordChangedAt: now, updatedAt: now });
      await tx.tokens.revokeAllForUser(user.id, now);
      await tx.links.revokeForUser(user.id, now);
    });
    this.#accountFailures.clear(`a:${user.email.toLowerCase()}`);
    return user;
  }

  /** The signed-in user changes their password; every session and token of theirs ends. */
  async changePassword(p: Principal, current: string, next: string, source: string): Promise<void> {
    const u = await this.store.users.getWithSecretById(p.userId);
    if (!u) throw notFound('user');
    const nowMs = this.now().getTime();
    const key = `a:${u.email.toLowerCase()}`;
    const wait = this.#accountFailures.blockedFor(key, nowMs);
    if (wait > 0) throw new AppError('rate_limited', `too many failed attempts; try again in ${Math.ceil(wait / 1000)} s`, { headers: { 'Retry-After': String(Math.ceil(wait / 1000)) } });
    if (!u.passwordHash || !(await verifyPassword(current, u.passwordHash))) {
      this.#accountFailures.fail(key, nowMs);
      this.#sourceFailures.fail(`s:${source}`, nowMs);
      throw invalid([{ path: 'currentPassword', message: 'is not your current password' }], 'wrong current password');
    }
    if (current === next) throw invalid([{ path: 'newPassword', message: 'must differ from the current password' }]);
    this.checkPolicy(next, 'newPassword', u.email);
    const hash = await hashPassword(next, this.opts.scryptCost);
    const now = this.now().toISOString();
    await this.store.transaction(async (tx) => {
      await tx.users.update(u.tenantId, u.id, { passwordHash: hash, passwordChangedAt: now, updatedAt: now });
      await tx.tokens.revokeAllForUser(u.id, now);
      await tx.links.revokeForUser(u.id, now);
    });
  }

  async getUser(tenantId: string, id: string): Promise<User> {
    const u = await this.store.users.get(tenantId, id);
    if (!u) throw notFound('user');
    return u;
  }

  listUsers(tenantId: string, page: PageRequest): Promise<Page<User>> {
    return this.store.users.list(tenantId, page);
  }

  async updateUser(p: Principal, tenantId: string, id: string, patch: UserUpdate): Promise<User> {
    const cur = await this.getUser(tenantId, id);
    if (patch.role !== undefined && (patch.role === 'system-admin' || !canGrant(p.role, patch.role))) {
      throw invalid([{ path: 'role', message: `role ${patch.role} cannot be given to a tenant's user` }]);
    }
    if (cur.id === p.userId && ((patch.role && patch.role !== cur.role) || patch.disabled)) {
      throw conflict('you cannot change your own role or disable yourself');
    }
    if (patch.password !== undefined) this.checkPolicy(patch.password, 'password', cur.email);
    const now = this.now().toISOString();
    const passwordHash = patch.password !== undefined ? await hashPassword(patch.password, this.opts.scryptCost) : undefined;
    await this.store.transaction(async (tx) => {
      await tx.users.update(tenantId, id, {
        ...(patch.name !== undefined && { name: patch.name }),
        ...(patch.role !== undefined && { role: patch.role }),
        ...(patch.disabled !== undefined && { disabled: patch.disabled }),
        ...(passwordHash !== undefined && { passwordHash, passwordChangedAt: now }),
        updatedAt: now,
      });
      // A new password or a disabled account ends every session, token and mailed link of that user.
      if (passwordHash !== undefined || patch.disabled) {
        await tx.tokens.revokeAllForUser(id, now);
        await tx.links.revokeForUser(id, now);
      }
    });
    return this.getUser(tenantId, id);
  }

  async deleteUser(p: Principal, tenantId: string, id: string): Promise<void> {
    await this.getUser(tenantId, id);
    if (id === p.userId) throw conflict('you cannot delete yourself');
    await this.store.users.delete(tenantId, id);
  }

  /** The calling user's own record (system administrators included). */
  async me(p: Principal): Promise<User> {
    const u = await this.store.users.get(p.tenantId, p.userId);
    if (!u) throw notFound('user');
    return u;
  }
}
