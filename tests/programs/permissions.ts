/**
 * Under Deno, run with --allow-net=127.0.0.1:1 only: listen and connect elsewhere must be
 * refused for lack of permission (a host name too, before any DNS lookup), with a
 * message saying what to run; a Unix socket needs read and write access to its path (run
 * without --allow-write). Prints one line per attempt.
 */
import process from "node:process";
import { connect, listen, listenDatagram, ZevError } from "../../mod.ts";

const report = (what: string, error: unknown) =>
  console.log(`${what}: ${error instanceof ZevError ? `${error.code}: ${error.message}` : String(error)}`);
try {
  listen({ hostname: "127.0.0.1", port: 0 }).close();
  console.log("listen: allowed");
} catch (error) {
  report("listen", error);
}
await connect({ hostname: "no-such-host.invalid", port: 80 }).then(
  (s) => (s.abort(), console.log("connect: allowed")),
  (error) => report("connect", error),
);
await connect({ hostname: "localhost", port: 9 }).then(
  (s) => (s.abort(), console.log("connect literal: allowed")),
  (error) => report("connect literal", error),
);
try {
  listen({ path: `/tmp/zev-permissions-${process.pid}.sock` }).close();
  console.log("listen unix: allowed");
} catch (error) {
  report("listen unix", error);
}
try {
  listenDatagram({ hostname: "127.0.0.1", port: 0 }).close();
  console.log("listenDatagram: allowed");
} catch (error) {
  report("listenDatagram", error);
}
await connect({ path: `/tmp/zev-permissions-${process.pid}-none.sock` }).then(
  (s) => (s.abort(), console.log("connect unix: allowed")),
  (error) => report("connect unix", error),
);
