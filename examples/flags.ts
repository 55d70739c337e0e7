/**
 * The flags the examples share: `--host` (default 127.0.0.1), `--port` (default 0, any
 * free port) and `--spin-micros` (default 0: see `configure`). A bad flag exits with
 * status 2 and says what was wrong.
 */

import process from "node:process";

export interface Flags {
  host: string;
  port: number;
  spinMicros: number;
}

export function parseFlags(args: string[]): Flags {
  const flags: Flags = { host: "127.0.0.1", port: 0, spinMicros: 0 };
  for (let i = 0; i < args.length; i++) {
    const [name, inline] = args[i].split("=", 2);
    const value = inline ?? args[++i];
    if (name === "--host" && value) flags.host = value;
    else if (name === "--port" && value !== undefined && /^\d+$/.test(value) && Number(value) <= 65535) {
      flags.port = Number(value);
    } else if (name === "--spin-micros" && value !== undefined && /^\d+$/.test(value)) {
      flags.spinMicros = Number(value);
    } else {
      console.error(
        `${
          name === "--port" ? `invalid --port ${JSON.stringify(value)}` : `unknown flag ${JSON.stringify(args[i])}`
        }; usage: [--host ADDRESS] [--port 0-65535] [--spin-micros N]`,
      );
      process.exit(2);
    }
  }
  return flags;
}
