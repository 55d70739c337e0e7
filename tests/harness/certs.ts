/**
 * Certificates for the TLS tests, made once per process with the `openssl` command
 * (Debian's; `make setup` installs it): a CA, a server certificate it signed for
 * localhost and 127.0.0.1, one for another name, an expired one, a self-signed one, and a
 * client certificate for mutual TLS. Files in a temporary directory, and their PEM text.
 */

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Pair {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}

export interface Certs {
  dir: string;
  ca: string;
  caFile: string;
  /** Signed by `ca` for localhost and 127.0.0.1. */
  server: Pair;
  /** Signed by `ca` for other.test only. */
  other: Pair;
  /** Signed by `ca` for *.wild.test. */
  wild: Pair;
  /** Signed by `ca` for localhost, expired yesterday. */
  expired: Pair;
  /** Self-signed for localhost. */
  selfSigned: Pair;
  /** A client certificate signed by `ca`. */
  client: Pair;
  /** A client certificate nobody trusts (self-signed). */
  stranger: Pair;
}

let made: Certs | undefined;

function openssl(dir: string, ...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function read(dir: string, name: string): Pair {
  const certFile = join(dir, `${name}.pem`), keyFile = join(dir, `${name}.key`);
  return { cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8"), certFile, keyFile };
}

function signed(dir: string, name: string, cn: string, san: string | undefined, days: number): Pair {
  openssl(dir, "req", ...EC, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, san ? `subjectAltName=${san}\n` : "extendedKeyUsage=clientAuth\n");
  openssl(
    dir,
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    `${name}.pem`,
    "-days",
    String(days),
    "-extfile",
    ext,
  );
  return read(dir, name);
}

function selfSigned(dir: string, name: string, cn: string): Pair {
  openssl(
    dir,
    "req",
    "-x509",
    ...EC,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-subj",
    `/CN=${cn}`,
    "-addext",
    `subjectAltName=DNS:${cn}`,
  );
  return read(dir, name);
}

export function certs(): Certs {
  if (made) return made;
  const dir = mkdtempSync(join(tmpdir(), "zev-certs-"));
  openssl(dir, "req", "-x509", ...EC, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=zev test CA");
  made = {
    dir,
    ca: readFileSync(join(dir, "ca.pem"), "utf8"),
    caFile: join(dir, "ca.pem"),
    server: signed(dir, "server", "localhost", "DNS:localhost,IP:127.0.0.1", 2),
    other: signed(dir, "other", "other.test", "DNS:other.test", 2),
    wild: signed(dir, "wild", "*.wild.test", "DNS:*.wild.test", 2),
    expired: signed(dir, "expired", "localhost", "DNS:localhost,IP:127.0.0.1", -1),
    selfSigned: selfSigned(dir, "self", "localhost"),
    client: signed(dir, "client", "zev test client", undefined, 2),
    stranger: selfSigned(dir, "stranger", "stranger"),
  };
  return made;
}
