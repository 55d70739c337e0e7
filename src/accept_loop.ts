/**
 * `acceptLoop`, after Janet's `net/accept-loop`: a supervised task per connection.
 *
 * @module
 */

import type { Listener } from "./listener.ts";
import type { Stream } from "./stream.ts";
import { call, currentTask, go, supervise, type Supervisor } from "./task.ts";
import { sleep } from "./deadline.ts";

/** Options of `acceptLoop`. */
export interface AcceptLoopOptions {
  /** Receives the errors of the connection tasks (default: the inherited supervisor). */
  supervisor?: Supervisor;
}

/**
 * Accepts connections until the listener closes, running `handler(stream)` as a task for
 * each (started with `go`). A handler's error goes to the supervisor and never stops
 * the loop; the stream is closed when its handler returns or throws. The returned
 * promise resolves when the listener closes.
 *
 * @example
 * ```ts
 * const listener = listen({ port: 0 });
 * acceptLoop(listener, async (stream) => {
 *   const buf = new Uint8Array(4096);
 *   for (let n; (n = await stream.read(buf)) !== null;) await stream.write(buf.subarray(0, n));
 * });
 * ```
 */
export function acceptLoop(
  listener: Listener,
  handler: (stream: Stream) => unknown,
  options: AcceptLoopOptions = {},
): Promise<void> {
  const serve = async (stream: Stream): Promise<void> => {
    try {
      await handler(stream);
    } finally {
      if (!stream.closed) await stream.close();
    }
  };
  Object.defineProperty(serve, "name", { value: handler.name || "connection handler" });

  const run = async (): Promise<void> => {
    while (!listener.closed) {
      let stream: Stream;
      try {
        stream = await listener.accept();
      } catch (error) {
        if (listener.closed) return;
        // Not a closed listener: report it, and do not spin on a persistent failure.
        const task = currentTask()!;
        task.supervisor(error, task);
        await sleep(10);
        continue;
      }
      go(serve, stream);
    }
  };
  Object.defineProperty(run, "name", { value: "acceptLoop" });
  const task = options.supervisor ? supervise(options.supervisor, run) : call(run);
  return task.done;
}
