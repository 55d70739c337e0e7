/**
 * A listener waiting in accept and a stream waiting in read, both unreferenced: the
 * process must exit. Usage: unref.ts PORT (a server that never writes)
 */
import process from "node:process";
import { acceptLoop, connect, listen } from "../../mod.ts";

const listener = listen({ hostname: "127.0.0.1", port: 0 }).unref();
void acceptLoop(listener, () => {});
const stream = (await connect({ port: Number(process.argv[2]) })).unref();
void stream.read(new Uint8Array(8));
process.on("exit", () => console.log("exited with an accept and a read pending"));
