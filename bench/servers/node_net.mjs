// Echo on node's `net` (libuv), with pipe() backpressure; with --tls-cert and --tls-key,
// on node's `tls` (OpenSSL).
import net from "node:net";
import tls from "node:tls";
import { readFileSync } from "node:fs";

const args = process.argv.slice(2);
const get = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const host = get("host", "127.0.0.1");
const cert = get("tls-cert"), key = get("tls-key");
const handler = (socket) => {
  socket.on("error", () => {});
  socket.pipe(socket);
};
const server = cert
  ? tls.createServer({ cert: readFileSync(cert), key: readFileSync(key), noDelay: true }, handler)
  : net.createServer({ noDelay: true }, handler);
server.listen(Number(get("port", "0")), host, () => console.log(`listening on ${host}:${server.address().port}`));
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
