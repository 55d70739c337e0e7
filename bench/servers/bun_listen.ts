/**
 * Echo on Bun's own sockets (`Bun.listen`): the bar for zev under Bun. With correct
 * backpressure: what the socket does not take is kept, reading pauses until `drain`.
 * With `--tls-cert FILE --tls-key FILE`, over Bun's own TLS (the bar for zev's TLS).
 */
import { parseFlags } from "../../examples/flags.ts";

const { host, port, tls } = parseFlags(process.argv.slice(2));
type State = { pending: Uint8Array | null };

const server = Bun.listen<State>({
  hostname: host,
  port,
  ...(tls ? { tls: { cert: tls.cert as string, key: tls.key as string } } : {}),
  socket: {
    open(socket) {
      socket.data = { pending: null };
    },
    data(socket, data) {
      const st = socket.data;
      if (st.pending) {
        // Already held back: keep the order, and keep reading paused.
        const joined = new Uint8Array(st.pending.length + data.length);
        joined.set(st.pending);
        joined.set(data, st.pending.length);
        st.pending = joined;
        socket.pause();
        return;
      }
      const n = socket.write(data);
      if (n < data.length) {
        st.pending = data.slice(n);
        socket.pause();
      }
    },
    drain(socket) {
      const st = socket.data;
      if (!st.pending) return;
      const n = socket.write(st.pending);
      if (n < st.pending.length) {
        st.pending = st.pending.subarray(n);
        return;
      }
      st.pending = null;
      socket.resume();
    },
  },
});
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
console.log(`listening on ${host}:${server.port}`);
