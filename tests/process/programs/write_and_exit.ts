/**
 * A client that writes more than the kernel takes at once and ends without closing or
 * awaiting anything more: the queued bytes must still reach the peer before the process
 * exits, as with node:net. Usage: write_and_exit.ts PORT BYTES
 */
import process from "node:process";
import { connect } from "../../../mod.ts";

const stream = await connect({ port: Number(process.argv[2]) });
const bytes = Number(process.argv[3]);
stream.setWriteQueueLimit(bytes); // the whole write fits: it resolves with bytes still queued
const data = new Uint8Array(bytes).fill(7);
await new Promise((resolve) => setTimeout(resolve, 100)); // the loop parks, with nothing queued
await stream.write(data);
console.log(`wrote ${bytes} bytes; ending without close`);
