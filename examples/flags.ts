/**
 * The flags the examples share: `--host` (default 127.0.0.1), `--port` (default 0, any
 * free port), `--spin-micros` (default 0: see `configure`), `--workers` (default 0:
 * one loop on the main thread; N: `serve({ workers: N })`), `--tls-cert FILE --tls-key
 * FILE` (serve TLS with that PEM certificate and key), and the string flags an example
 * asks for by name (`--upstream` for examples/proxy.ts). A bad flag exits with status 2
 * and says what was wrong.
 */

import process from "node:process";
import { readFileSync } from "node:fs";
import type { TlsServerOptions } from "../mod.ts";

export interface Flags {
  host: string;
  port: number;
  spinMicros: number;
  workers: number;
  /** `--upstream` (examples/proxy.ts), when the example takes it. */
  upstream?: string;
  /** `--tls-cert` and `--tls-key`, read: the server's TLS options. */
  tls?: TlsServerOptions;
}

/** Parses `args`; `extra` names the string flags this example takes beside the shared ones. */
export function parseFlags(args: string[], extra: readonly "upstream"[] = []): Flags {
  const flags: Flags = { host: "127.0.0.1", port: 0, spinMicros: 0, workers: 0 };
  let cert: string | undefined, key: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const [name, inline] = args[i].split("=", 2);
    const value = inline ?? args[++i];
    if (name === "--host" && value) flags.host = value;
    else if (name === "--port" && value !== undefined && /^\d+$/.test(value) && Number(value) <= 65535) {
      flags.port = Number(value);
    } else if (name === "--spin-micros" && value !== undefined && /^\d+$/.test(value)) {
      flags.spinMicros = Number(value);
    } else if (name === "--workers" && value !== undefined && /^\d+$/.test(value)) {
      flags.workers = Number(value);
    } else if (name === "--upstream" && extra.includes("upstream") && value) {
      flags.upstream = value;
    } else if (name === "--tls-cert" && value) {
      cert = value;
    } else if (name === "--tls-key" && value) {
      key = value;
    } else {
      const more = extra.map((f) => ` [--${f} VALUE]`).join("");
      console.error(
        `${
          name === "--port" ? `invalid --port ${JSON.stringify(value)}` : `unknown flag ${JSON.stringify(args[i])}`
        }; usage: [--host ADDRESS] [--port 0-65535] [--spin-micros N] [--workers N] [--tls-cert FILE --tls-key FILE]${more}`,
      );
      process.exit(2);
    }
  }
  if ((cert === undefined) !== (key === undefined)) {
    console.error("--tls-cert and --tls-key go together");
    process.exit(2);
  }
  if (cert !== undefined && key !== undefined) {
    try {
      flags.tls = { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") };
    } catch (error) {
      console.error(`cannot read the TLS certificate or key: ${(error as Error).message}`);
      process.exit(2);
    }
  }
  return flags;
}
