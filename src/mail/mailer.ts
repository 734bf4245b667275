import { randomUUID } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Transporter } from 'nodemailer';
import type { Logger } from '../logger.ts';

/** nodemailer is loaded on the first mail: most servers send few, and it costs ~10 MB resident. */
const loadNodemailer = async () => (await import('nodemailer')).default;

/**
 * Outgoing mail (invitations, password resets). Through SMTP (nodemailer) when a server is
 * configured; otherwise each message is written as an `.eml` file (mode 0600: it holds a link that
 * sets a password) into an outbox folder, and a log line says where.
 */
export interface Mail {
  to: string;
  subject: string;
  text: string;
}

export interface SentMail {
  via: 'smtp' | 'outbox';
  messageId: string;
  /** The outbox file, when written there. */
  file?: string;
}

export interface Mailer {
  send(mail: Mail): Promise<SentMail>;
  close(): void;
}

export interface MailerOptions {
  smtpUrl?: string | undefined;
  smtpPassword?: string | undefined;
  from: string;
  outboxDir: string;
  logger: Logger;
}

export function createMailer(o: MailerOptions): Mailer {
  if (o.smtpUrl) return smtpMailer(o as MailerOptions & { smtpUrl: string });
  return outboxMailer(o);
}

function smtpMailer(o: MailerOptions & { smtpUrl: string }): Mailer {
  const url = new URL(o.smtpUrl);
  let transport: Transporter | undefined;
  const options = {
    host: url.hostname,
    port: Number(url.port) || (url.protocol === 'smtps:' ? 465 : 587),
    secure: url.protocol === 'smtps:',
    ...(url.username && { auth: { user: decodeURIComponent(url.username), pass: o.smtpPassword ?? decodeURIComponent(url.password) } }),
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
    socketTimeout: 30_000,
  };
  return {
    async send(mail) {
      transport ??= (await loadNodemailer()).createTransport(options);
      const info = await transport.sendMail({ from: o.from, to: mail.to, subject: mail.subject, text: mail.text });
      o.logger.info({ to: mail.to, subject: mail.subject, messageId: info.messageId }, 'mail sent');
      return { via: 'smtp', messageId: String(info.messageId) };
    },
    close() {
      transport?.close();
    },
  };
}

function outboxMailer(o: MailerOptions): Mailer {
  // nodemailer builds the message (headers, encoding) exactly as it would send it.
  let builder: Transporter | undefined;
  return {
    async send(mail) {
      builder ??= (await loadNodemailer()).createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
      const info = (await builder.sendMail({ from: o.from, to: mail.to, subject: mail.subject, text: mail.text })) as { messageId: string; message: Buffer };
      await mkdir(o.outboxDir, { recursive: true, mode: 0o700 });
      const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}.eml`;
      const file = join(o.outboxDir, name);
      await writeFile(`${file}.part`, info.message, { mode: 0o600 });
      await rename(`${file}.part`, file);
      o.logger.info({ to: mail.to, subject: mail.subject, file }, 'no SMTP server configured: mail written to the outbox');
      return { via: 'outbox', messageId: info.messageId, file };
    },
    close() {
      builder?.close();
    },
  };
}
