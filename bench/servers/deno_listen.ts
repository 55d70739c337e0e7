/**
 * Echo on Deno's own sockets (`Deno.listen`): the bar for zev under Deno. With
 * `--tls-cert FILE --tls-key FILE`, on `Deno.listenTls` (the bar for zev's TLS).
 */
import { parseFlags } from "../../examples/flags.ts";

const { host, port, tls } = parseFlags(Deno.args);
const listener = tls
  ? Deno.listenTls({ hostname: host, port, cert: tls.cert as string, key: tls.key as string })
  : Deno.listen({ hostname: host, port });
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
Deno.addSignalListener("SIGINT", () => Deno.exit(0));
console.log(`listening on ${host}:${(listener.addr as Deno.NetAddr).port}`);

async function echo(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(16 * 1024);
  try {
    for (let n; (n = await conn.read(buf)) !== null;) {
      for (let off = 0; off < n;) off += await conn.write(buf.subarray(off, n));
    }
  } catch {
    // reset by the peer
  } finally {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

for await (const conn of listener) {
  if ("setNoDelay" in conn) conn.setNoDelay(true);
  echo(conn);
}
