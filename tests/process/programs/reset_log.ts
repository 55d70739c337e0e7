/**
 * A handler whose peer resets: the default supervisor reports it in one line, no stack.
 */
import net from "node:net";
import { acceptLoop, listen, sleep } from "../../../mod.ts";

const listener = listen({ hostname: "127.0.0.1", port: 0 });
const loop = acceptLoop(listener, async function handler(stream) {
  await sleep(50);
  await stream.read(new Uint8Array(16)); // the peer has reset by now
});
const client = net.connect({ port: listener.addr.port, host: "127.0.0.1" });
await new Promise((r) => client.once("connect", r));
await sleep(20); // accepted, and the handler waits
client.resetAndDestroy();
await sleep(150);
listener.close();
await loop;
