/**
 * A client that reads a stream to its end and never closes it: the process must exit,
 * as with Deno.connect and node:net. Usage: read_to_end.ts PORT
 */
import process from "node:process";
import { connect } from "../../../mod.ts";

const stream = await connect({ port: Number(process.argv[2]) });
const buf = new Uint8Array(64);
let total = 0;
for (let n; (n = await stream.read(buf)) !== null;) total += n;
console.log(`read ${total} bytes to the end; not closing`);
