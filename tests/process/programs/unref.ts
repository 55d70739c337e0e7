/**
 * A listener waiting in accept, a stream waiting in read and a UDP socket waiting in
 * receive, all unreferenced: the process must exit. Usage: unref.ts PORT (a server that
 * never writes)
 */
import process from "node:process";
import { acceptLoop, connect, listen, listenDatagram } from "../../../mod.ts";

const listener = listen({ hostname: "127.0.0.1", port: 0 }).unref();
void acceptLoop(listener, () => {});
const stream = (await connect({ port: Number(process.argv[2]) })).unref();
void stream.read(new Uint8Array(8));
void listenDatagram({ hostname: "127.0.0.1", port: 0 }).unref().receive(new Uint8Array(8));
process.on("exit", () => console.log("exited with an accept, a read and a receive pending"));
