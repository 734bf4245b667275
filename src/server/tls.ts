import { createSign, generateKeyPairSync, randomBytes, X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import forge from 'node-forge';
import type { Logger } from '../logger.ts';

/**
 * Certificates and the TLS policy. At first start, unless the user supplies PEM files, a private
 * CA and two server certificates it signs (RSA 2048 for every phone, ECDSA P-256 for the many that
 * support it: far cheaper handshakes) are written to `<dataDir>/tls/` and reused afterwards.
 *
 * node-forge builds the certificates; it cannot encode EC keys, so the ECDSA certificate's key
 * and the signature are made by Node's own crypto and spliced into forge's ASN.1 (see {@link ecdsaCert}).
 */
export interface TlsMaterial {
  /** Unencrypted PEM keys, one per certificate (Node picks by the client's signature algorithms). */
  key: string[];
  cert: string[];
  /** The CA phones must trust (`GET <base>ca.crt`), or undefined with user-supplied certificates. */
  caPem: string | undefined;
  hosts: string[];
}

/** TLS 1.2+; forward-secret AEAD suites only (TLS 1.3 suites are all AEAD). */
export const TLS_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export function tlsServerOptions(m: TlsMaterial): SecureContextOptions & { honorCipherOrder: boolean } {
  return {
    key: m.key,
    cert: m.cert,
    minVersion: 'TLSv1.2',
    ciphers: TLS_CIPHERS,
    honorCipherOrder: true,
    ecdhCurve: 'X25519:P-256:P-384',
  };
}

/** No client-initiated renegotiation (a cheap CPU attack), on every accepted TLS socket. */
export function hardenSocket(socket: TLSSocket): void {
  socket.disableRenegotiation();
  // Node only reports the attempt. The client gets a last 400 and the connection is cut, as Node's
  // HTTP server does for any client error: a client in the middle of its handshake notices a
  // record, where it may not notice a bare close.
  socket.on('error', (err) => {
    if (!/renegotiation/i.test(err.message)) return;
    if (socket.writable) socket.write('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    socket.destroy();
  });
}

const tenYears = 10 * 365 * 86400_000;
const twoYears = 2 * 365 * 86400_000;

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f;
  return b.toString('hex');
}

function altNames(hosts: string[]): Array<{ type: number; value?: string; ip?: string }> {
  return hosts.map((h) => (isIP(h) ? { type: 7, ip: h } : { type: 2, value: h }));
}

function rsaKeys(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
  };
}

function makeCa(): { certPem: string; keyPem: string } {
  const keys = rsaKeys();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicPem);
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 86400_000);
  cert.validity.notAfter = new Date(Date.now() + tenYears);
  const name = [
    { name: 'commonName', value: 'edgeprov private CA' },
    { name: 'organizationName', value: 'edgeprov' },
  ];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keys.privatePem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privatePem };
}

function serverTemplate(hosts: string[], ca: forge.pki.Certificate, publicKey: forge.pki.PublicKey): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(Date.now() - 86400_000);
  cert.validity.notAfter = new Date(Date.now() + twoYears);
  cert.setSubject([{ name: 'commonName', value: hosts[0] ?? 'edgeprov' }]);
  cert.setIssuer(ca.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: altNames(hosts) },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
  ]);
  return cert;
}

function rsaServerCert(hosts: string[], ca: { certPem: string; keyPem: string }): { certPem: string; keyPem: string } {
  const keys = rsaKeys();
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const cert = serverTemplate(hosts, caCert, forge.pki.publicKeyFromPem(keys.publicPem));
  cert.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: keys.privatePem };
}

/**
 * An ECDSA P-256 server certificate signed by the RSA CA: forge lays out the TBSCertificate with a
 * placeholder RSA key, the EC SubjectPublicKeyInfo replaces it, and Node signs the result.
 */
export function ecdsaCert(hosts: string[], ca: { certPem: string; keyPem: string }): { certPem: string; keyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const placeholder = forge.pki.publicKeyFromPem(rsaKeys().publicPem);
  const cert = serverTemplate(hosts, caCert, placeholder);
  // Extensions must be encoded by forge; keyEncipherment does not apply to EC keys.
  cert.setExtensions(
    cert.extensions.map((e: { name: string }) => (e.name === 'keyUsage' ? { name: 'keyUsage', digitalSignature: true, critical: true } : e)),
  );
  cert.signatureOid = forge.pki.oids.sha256WithRSAEncryption as string;
  cert.siginfo.algorithmOid = cert.signatureOid;
  const tbs = (forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert);
  const spkiDer = publicKey.export({ type: 'spki', format: 'der' });
  const spki = forge.asn1.fromDer(forge.util.createBuffer(spkiDer.toString('binary')));
  // TBSCertificate: [0] version, serial, signature, issuer, validity, subject, subjectPublicKeyInfo, [3] extensions
  (tbs.value as forge.asn1.Asn1[])[6] = spki;
  const tbsDer = Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary');
  const signature = createSign('sha256').update(tbsDer).sign(createPrivateKey(ca.keyPem));
  const { asn1 } = forge;
  const certAsn1 = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(forge.pki.oids.sha256WithRSAEncryption as string).getBytes()),
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
    ]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, String.fromCharCode(0) + signature.toString('binary')),
  ]);
  const der = Buffer.from(asn1.toDer(certAsn1).getBytes(), 'binary');
  const certPem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END CERTIFICATE-----\n`;
  // Fail loudly at start-up rather than serving a broken certificate.
  const parsed = new X509Certificate(certPem);
  if (!parsed.verify(createPublicKey(ca.certPem))) throw new Error('generated ECDSA certificate does not verify');
  return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

function writeSecret(path: string, content: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, path);
}

export interface EnsureTlsOptions {
  dataDir: string;
  hosts: string[];
  certFile?: string | undefined;
  keyFile?: string | undefined;
  logger: Logger;
}

/** Loads the user's certificate, or the generated ones (creating them at first start). */
export function ensureTls(opts: EnsureTlsOptions): TlsMaterial {
  if (opts.certFile || opts.keyFile) {
    if (!opts.certFile || !opts.keyFile) throw new Error('https.certFile and https.keyFile go together');
    return { key: [readFileSync(opts.keyFile, 'utf8')], cert: [readFileSync(opts.certFile, 'utf8')], caPem: undefined, hosts: opts.hosts };
  }
  const dir = join(opts.dataDir, 'tls');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = (n: string) => join(dir, n);
  if (!existsSync(f('ca.crt')) || !existsSync(f('ca.key'))) {
    const ca = makeCa();
    writeSecret(f('ca.key'), ca.keyPem);
    writeFileSync(f('ca.crt'), ca.certPem);
    opts.logger.info({ dir }, 'generated a private CA');
  }
  const ca = { certPem: readFileSync(f('ca.crt'), 'utf8'), keyPem: readFileSync(f('ca.key'), 'utf8') };
  const hostsFile = f('hosts.json');
  const wanted = JSON.stringify([...opts.hosts].sort());
  const stale = !existsSync(hostsFile) || readFileSync(hostsFile, 'utf8') !== wanted;
  if (stale || !existsSync(f('server-rsa.crt')) || !existsSync(f('server-ecdsa.crt'))) {
    const rsa = rsaServerCert(opts.hosts, ca);
    const ec = ecdsaCert(opts.hosts, ca);
    writeSecret(f('server-rsa.key'), rsa.keyPem);
    writeFileSync(f('server-rsa.crt'), rsa.certPem + ca.certPem);
    writeSecret(f('server-ecdsa.key'), ec.keyPem);
    writeFileSync(f('server-ecdsa.crt'), ec.certPem + ca.certPem);
    writeFileSync(hostsFile, wanted);
    opts.logger.info({ hosts: opts.hosts }, 'generated server certificates (RSA and ECDSA)');
  }
  return {
    key: [readFileSync(f('server-ecdsa.key'), 'utf8'), readFileSync(f('server-rsa.key'), 'utf8')],
    cert: [readFileSync(f('server-ecdsa.crt'), 'utf8'), readFileSync(f('server-rsa.crt'), 'utf8')],
    caPem: ca.certPem,
    hosts: opts.hosts,
  };
}
