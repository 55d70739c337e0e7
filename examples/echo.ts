/**
 * A TCP echo server on `acceptLoop` + `go`.
 *
 *   deno run --allow-ffi --allow-read --allow-env --allow-net examples/echo.ts [--host 127.0.0.1] [--port 0]
 *   bun examples/echo.ts [--host 127.0.0.1] [--port 0] [--workers N] [--tls-cert FILE --tls-key FILE]
 *
 * Prints `listening on HOST:PORT` once ready; exits 0 on SIGINT or SIGTERM. With
 * `--workers N`, N Workers serve the port, each running this module again.
 */

import process from "node:process";
import { configure, serve, type ServeOptions, type Stream, workerIndex, ZevError } from "../mod.ts";
import { parseFlags } from "./flags.ts";

const { host, port, spinMicros, workers, tls } = parseFlags(process.argv.slice(2));
configure({ spinMicros });
let lastLog = 0;

// `read()` without a buffer: a connection waiting for its client holds no buffer (the
// bytes are read into one the thread shares and handed over at their size), so many open,
// mostly idle connections cost little memory. Each chunk is ours to keep.
async function echo(stream: Stream): Promise<void> {
  try {
    for (let chunk; (chunk = await stream.read()) !== null;) await stream.write(chunk);
  } catch (error) {
    // A peer that resets is routine for a server, not an error to report.
    const code = error instanceof ZevError ? error.code : "";
    if (!["ConnectionReset", "BrokenPipe", "TlsTruncated"].includes(code)) throw error;
  }
}

const options: ServeOptions = {
  hostname: host,
  port,
  tls,
  // Out of descriptors: zev pauses accepting and retries; say so, at most once a second.
  onAcceptError(error) {
    if (Date.now() - lastLog < 1000) return;
    lastLog = Date.now();
    console.error(`echo: ${error.message}`);
  },
};
const server = workers > 0 ? await serve({ ...options, workers }, echo) : serve(options, echo);
// The main thread (a Worker only serves): a graceful shutdown on a signal (stop
// accepting, give open connections 5 s, then cut them).
if (workerIndex() === undefined) {
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => server.close({ gracePeriod: 5000 }));
  console.log(`listening on ${server.addr.hostname}:${server.addr.port}`);
  await server.finished;
  process.exit(0);
}
