/**
 * A minimal HTTP/1.1 keep-alive server on `acceptLoop` + `go`: every request gets the
 * same small body. Pipelined requests are answered in order, in one write per read.
 *
 *   deno run --allow-ffi --allow-read --allow-env --allow-net examples/http.ts [--host 127.0.0.1] [--port 0]
 *   bun examples/http.ts [--host 127.0.0.1] [--port 0] [--tls-cert FILE --tls-key FILE]
 *
 * Prints `listening on HOST:PORT` once ready; exits 0 on SIGINT or SIGTERM.
 */

import process from "node:process";
import { configure, serve, type Stream, ZevError } from "../mod.ts";
import { parseFlags } from "./flags.ts";

const encoder = new TextEncoder();
const BODY = "Hello, World!\n";
const OK = encoder.encode(
  `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\n\r\n${BODY}`,
);
const BAD = encoder.encode("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
const TOO_LARGE = encoder.encode(
  "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
);
/** Requests larger than this (head and body) are refused. */
const MAX_REQUEST = 64 * 1024;

/** Index of the blank line ending a request head ("\r\n\r\n"), or -1. */
function headEnd(buf: Uint8Array, from: number, to: number): number {
  for (let i = from; i + 3 < to; i++) {
    if (buf[i + 3] === 10 && buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13) return i;
  }
  return -1;
}

function latin1(buf: Uint8Array, from: number, to: number): string {
  let s = "";
  for (let i = from; i < to; i++) s += String.fromCharCode(buf[i]);
  return s;
}

/** Responses for `count` requests in one buffer. */
const batches: Uint8Array[] = [];
function responses(count: number): Uint8Array {
  let b = batches[count];
  if (!b) {
    b = new Uint8Array(OK.length * count);
    for (let i = 0; i < count; i++) b.set(OK, i * OK.length);
    if (count < 64) batches[count] = b;
  }
  return b;
}

async function handle(stream: Stream): Promise<void> {
  try {
    await exchange(stream);
  } catch (error) {
    // A client that resets is routine for a server, not an error to report.
    const code = error instanceof ZevError ? error.code : "";
    if (!["ConnectionReset", "BrokenPipe", "TlsTruncated"].includes(code)) throw error;
  }
}

/** Reads requests and answers them until the client closes or asks to close. */
async function exchange(stream: Stream): Promise<void> {
  const buf = new Uint8Array(MAX_REQUEST);
  let start = 0, end = 0;
  for (;;) {
    if (end === buf.length) {
      if (start === 0) return void await stream.write(TOO_LARGE);
      buf.copyWithin(0, start, end);
      end -= start;
      start = 0;
    }
    const n = await stream.read(buf.subarray(end));
    if (n === null) return;
    end += n;
    let count = 0, close = false;
    for (;;) {
      const at = headEnd(buf, start, end);
      if (at < 0) break;
      const head = latin1(buf, start, at);
      if (!/^[A-Z]+ \S+ HTTP\/1\.[01]\r\n/.test(head)) {
        await stream.write(BAD);
        return;
      }
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      if (at + 4 + length > end) break; // the body is still coming
      start = at + 4 + length;
      count++;
      if (
        /\r\nconnection:\s*close/i.test(head) ||
        (head.includes("HTTP/1.0") && !/\r\nconnection:\s*keep-alive/i.test(head))
      ) {
        close = true;
        break;
      }
    }
    if (start === end) start = end = 0;
    if (count > 0) await stream.write(responses(count));
    if (close) return;
  }
}

const { host, port, spinMicros, tls } = parseFlags(process.argv.slice(2));
configure({ spinMicros });
const server = serve({ hostname: host, port, tls }, handle);
// A graceful shutdown: stop accepting, give open connections 5 s, then cut them.
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => server.close({ gracePeriod: 5000 }));
console.log(`listening on ${server.addr.hostname}:${server.addr.port}`);
await server.finished;
process.exit(0);
