/**
 * Run under a small descriptor limit: descriptors run out before the loop has ever
 * parked, and the loop then parks while they are still out. listen and connect must fail
 * with TooManyOpenFiles (never crash the process), and everything works again once
 * descriptors are free. Prints "ok" at the end.
 */
import net from "node:net";
import { closeSync } from "node:fs";
import { useUpDescriptors } from "./descriptors.ts";
import { connect, listen, sleep, ZevError } from "../../../mod.ts";

// No await before this point: the loop has not parked yet.
const listener = listen({ hostname: "127.0.0.1", port: 0 });
const files = useUpDescriptors();
const codes: string[] = [];
try {
  listen({ hostname: "127.0.0.1", port: 0 });
} catch (error) {
  codes.push(error instanceof ZevError ? error.code : String(error));
}
await connect({ port: listener.addr.port }).catch((error) =>
  codes.push(error instanceof ZevError ? error.code : String(error))
);
console.log(`while exhausted: ${codes.join(", ")}`);
await sleep(50); // the loop parks, descriptors still exhausted
// Room for one client of the runtime's own: accepting it pauses the listener (it has no
// onAcceptError: silently), and it is accepted once descriptors are free.
closeSync(files.pop()!);
const early = net.connect({ port: listener.addr.port, host: "127.0.0.1" });
await new Promise((r) => early.once("connect", r));
const accepting = listener.accept();
await sleep(50);
for (const fd of files) closeSync(fd);
(await accepting).abort();
early.destroy();
const [client, server] = await Promise.all([connect({ port: listener.addr.port }), listener.accept()]);
await client.write(new TextEncoder().encode("hi"));
const buf = new Uint8Array(2);
await server.readFull(buf);
await Promise.all([client.close(), server.close()]);
listener.close();
console.log(new TextDecoder().decode(buf) === "hi" ? "ok" : "wrong data");
