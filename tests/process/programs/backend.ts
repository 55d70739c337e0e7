/**
 * Moves its loop between backends with `configure({ backend })` and echoes on each; prints
 * one line per step for tests/lifecycle.test.ts. A process of its own: a backend changes
 * only while nothing is open, which a shared test process cannot promise.
 */
import { configure, connect, listen, stats } from "../../../mod.ts";

async function echo(): Promise<string> {
  const listener = listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([connect({ port: listener.addr.port }), listener.accept()]);
  await client.write(new TextEncoder().encode("ping"));
  const buf = new Uint8Array(4);
  await server.readFull(buf);
  await Promise.all([client.close(), server.close()]);
  listener.close();
  return new TextDecoder().decode(buf);
}

function failure(fn: () => unknown): string {
  try {
    fn();
    return "no error";
  } catch (error) {
    return (error as Error).message;
  }
}

const start = configure();
console.log(`start: ${start.backend} reason=${start.backendReason ?? "none"} stats=${stats().backend}`);
console.log(`wake: ${start.wake} reason=${start.wakeReason ?? "none"}`);
for (const backend of ["auto", "epoll", "io_uring", "epoll"] as const) {
  const error = failure(() => configure({ backend }));
  const now = configure();
  console.log(
    `${backend}: ${now.backend} reason=${now.backendReason ?? "none"} stats=${stats().backend} echo=${await echo()}${
      error === "no error" ? "" : ` error=${error}`
    }`,
  );
}
// While something is open the backend stays, and says why; a bad name changes nothing.
const listener = listen({ hostname: "127.0.0.1", port: 0 });
console.log(`while open: ${failure(() => configure({ backend: "io_uring" }))} now=${configure().backend}`);
listener.close();
console.log(
  `bad name: ${failure(() => configure({ spinMicros: 7, backend: "uring" as "auto" }))} spin=${configure().spinMicros}`,
);
