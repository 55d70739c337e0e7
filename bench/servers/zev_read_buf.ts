/**
 * zev's echo with the buffer idiom: each connection's task waits in `read(buf)` holding a
 * 16 KiB buffer of its own (reused across connections, as examples/echo.ts did before
 * `read()` without a buffer). bench/idle.ts measures what an idle connection costs with
 * it, beside examples/echo.ts.
 */
import process from "node:process";
import { serve, type Stream, ZevError } from "../../mod.ts";
import { parseFlags } from "../../examples/flags.ts";

const { host, port } = parseFlags(process.argv.slice(2));
const spare: Uint8Array[] = [];

async function echo(stream: Stream): Promise<void> {
  const buf = spare.pop() ?? new Uint8Array(16 * 1024);
  try {
    for (let n; (n = await stream.read(buf)) !== null;) await stream.write(buf.subarray(0, n));
  } catch (error) {
    if (!(error instanceof ZevError && ["ConnectionReset", "BrokenPipe"].includes(error.code))) throw error;
  } finally {
    if (spare.length < 1024) spare.push(buf);
  }
}

const server = serve({ hostname: host, port }, echo);
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => server.close({ gracePeriod: 0 }));
console.log(`listening on ${server.addr.hostname}:${server.addr.port}`);
await server.finished;
process.exit(0);
