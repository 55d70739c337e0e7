/**
 * Under Deno, run with --allow-net=127.0.0.1:1,127.0.0.2 only: listen, connect and a UDP
 * send elsewhere must be refused for lack of permission (a host name too, before any DNS
 * lookup), with a message saying what to run; a Unix socket needs read and write access
 * to its path (run without --allow-write). Prints one line per attempt.
 */
import process from "node:process";
import { connect, listen, listenDatagram, ZevError } from "../../../mod.ts";

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
// UDP from a socket the permissions allow (on 127.0.0.2) to where they do not.
try {
  const udp = listenDatagram({ hostname: "127.0.0.2", port: 0 });
  for (const hostname of ["127.0.0.3", "localhost", "no-such-host.invalid"]) {
    await udp.send(new Uint8Array(1), { hostname, port: 9 }).then(
      () => console.log(`send to ${hostname}: allowed`),
      (error) => report(`send to ${hostname}`, error),
    );
  }
  udp.close();
} catch (error) {
  report("listenDatagram on 127.0.0.2", error);
}
