/**
 * `serve({ workers: n })`: n event loops in n Workers, one listener each on the same port
 * (SO_REUSEPORT), the kernel spreading connections over them. The program's main module
 * runs again in each Worker, where the same `serve` call serves on that Worker's loop;
 * the main thread starts them, replaces one that fails, and shuts them down together.
 *
 * A Worker that fails (an error nothing caught) closes its own event loop first, on its
 * own thread: its listener leaves the port's group at once, so no connection is routed
 * to a Worker that will never accept it, and no other thread touches its loop.
 *
 * @module
 */

import type { Addr } from "../net/addr.ts";
import { graceMs, type ShutdownOptions } from "./accept_loop.ts";
import { ZevError } from "../core/errors.ts";
import { driver } from "../core/driver.ts";
import { type Server, startServer, type WorkersServeOptions } from "./server.ts";
import type { Stream } from "../net/stream.ts";
import { checkListen } from "../net/open.ts";
import { checkMs, checkSupervisor, show } from "../core/validate.ts";
import { MAX_WORKERS } from "../core/limits.ts";

const native = driver.native;
/** One loop stays for the main thread (`limits().maxLoops` is 64). */
/** How long a Worker may take to load the program and listen, unless `startTimeout` says. */
const DEFAULT_START_MS = 30_000;
/**
 * A Worker that fails is replaced at once; one that fails again within this long of
 * starting is replaced after a pause that doubles (to 32 times this) while it keeps
 * failing, so a program that cannot start does not spin.
 */
const RESTART_PAUSE_MS = 1000;

/** Messages between the main thread and a serving Worker. */
type ToMain =
  | { zev: "listening"; addr: Addr }
  | { zev: "connections"; n: number }
  | { zev: "closed" }
  | { zev: "failed"; message: string; code?: string };
type ToWorker = { zev: "close"; gracePeriod?: number };

interface WorkerScope {
  postMessage(message: ToMain): void;
  close(): void;
  addEventListener(type: string, listener: (event: Event) => void): void;
}

/** The index of this serving Worker (0 to n - 1), or undefined on the main thread. */
export function workerIndex(): number | undefined {
  const tag = native.workers.tag();
  return tag === undefined ? undefined : Number(tag.split(":")[0]);
}

function checkWorkers(options: WorkersServeOptions): number {
  const n = options.workers;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > MAX_WORKERS) {
    throw new RangeError(`serve: invalid workers ${show(n)}: expected an integer from 1 to ${MAX_WORKERS}`);
  }
  if ("path" in options && options.path !== undefined) {
    throw new TypeError("serve: workers is for TCP (SO_REUSEPORT), not for a Unix socket (path)");
  }
  if (options.startTimeout !== undefined) checkMs(options.startTimeout, "serve", "startTimeout");
  // What each Worker's `listen` would refuse is refused here, before any Worker starts.
  checkListen(options, "serve");
  if (options.supervisor !== undefined) checkSupervisor(options.supervisor, "serve");
  return n;
}

/** @internal `serve` with `workers`: the main thread's side, or a Worker's. */
export function serveWorkers(options: WorkersServeOptions, handler: (stream: Stream) => unknown): Promise<Server> {
  try {
    const n = checkWorkers(options);
    const tag = native.workers.tag();
    return tag === undefined ? supervise(options, n) : Promise.resolve(serveHere(options, handler, tag));
  } catch (error) {
    return Promise.reject(error);
  }
}

/** In a Worker: serve on this thread's loop, on the port the main thread gave. */
function serveHere(options: WorkersServeOptions, handler: (stream: Stream) => unknown, tag: string): Server {
  const scope = globalThis as unknown as WorkerScope;
  const port = Number(tag.split(":")[1]);
  let server: Server;
  // The main thread's `connections`: told after a change, at most 10 times a second, and
  // with no timer while nothing changes (an idle Worker is not woken).
  let told = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tell = () => {
    timer = undefined;
    if (server.connections !== told) scope.postMessage({ zev: "connections", n: told = server.connections });
  };
  const changed = () => void (timer ??= setTimeout(tell, 100));
  try {
    // Told before `finished` resolves: the program may end the Worker right after.
    server = startServer(
      { ...options, port, reusePort: true },
      handler,
      () => scope.postMessage({ zev: "closed" }),
      changed,
    );
  } catch (error) {
    const e = error as { message?: string; code?: string };
    scope.postMessage({ zev: "failed", message: String(e?.message ?? error), code: e?.code });
    throw error;
  }
  const fail = (event: Event, what: unknown) => {
    event.preventDefault();
    // Out of service at once: the listener leaves the port's group with the loop; then
    // the Worker ends before its loop driver can find the loop gone.
    native.sym.zev_loop_close(driver.loop);
    scope.postMessage({ zev: "failed", message: String((what as Error)?.stack ?? what) });
    scope.close();
  };
  scope.addEventListener("error", (e) => fail(e, (e as ErrorEvent).error ?? (e as ErrorEvent).message));
  scope.addEventListener("unhandledrejection", (e) => fail(e, (e as Event & { reason?: unknown }).reason));
  scope.addEventListener("message", (e) => {
    const message = (e as MessageEvent).data as ToWorker;
    if (message?.zev === "close") server.close({ gracePeriod: message.gracePeriod });
  });
  server.finished.then(() => clearTimeout(timer));
  scope.postMessage({ zev: "listening", addr: server.addr });
  return server;
}

interface Slot {
  worker: Worker;
  connections: number;
  startedAt: number;
  /** Failures in a row, each within `RESTART_PAUSE_MS` of its start. */
  quickFailures: number;
  timer?: ReturnType<typeof setTimeout>;
  failed?: boolean;
  closed?: () => void;
}

function stop(slot: Slot | undefined): void {
  if (slot === undefined) return;
  clearTimeout(slot.timer);
  slot.worker.terminate();
}

/** On the main thread: start the Workers, replace those that fail, close them together. */
function supervise(options: WorkersServeOptions, n: number): Promise<Server> {
  const url = native.workers.mainModule();
  const startMs = options.startTimeout ?? DEFAULT_START_MS;
  const slots: Slot[] = [];
  let addr: Addr | undefined;
  let closing: Promise<void> | undefined;
  /** Replacements waiting out their pause: `close` clears them, so none keeps the process alive. */
  const restarts = new Set<ReturnType<typeof setTimeout>>();
  let finish: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));

  /**
   * Starts Worker `i` on `port`; resolves with its address once it listens. A first
   * start that fails rejects; a replacement that fails is replaced in turn.
   */
  const start = (i: number, port: number, quickFailures = 0, initial = true): Promise<Addr> =>
    new Promise((resolve, reject) => {
      const worker = native.workers.start(url, `${i}:${port}`);
      const slot: Slot = { worker, connections: 0, startedAt: Date.now(), quickFailures };
      slots[i] = slot;
      let listening = false;
      slot.timer = setTimeout(() => failed(`did not listen within ${startMs} ms`), startMs);
      const failed = (message: string, code = "WorkerFailed") => {
        // Told twice in Bun (the Worker's message and its error event): act once.
        if (slot.failed) return;
        slot.failed = true;
        stop(slot);
        slot.closed?.();
        if (initial && !listening) return reject(new ZevError(code, `serve: worker ${i}: ${message}`));
        if (closing || slots[i] !== slot) return;
        console.error(`zev: serve worker ${i} failed, replacing it: ${message}`);
        const quick = !listening || Date.now() - slot.startedAt < RESTART_PAUSE_MS ? slot.quickFailures + 1 : 0;
        const pause = quick <= 1 ? 0 : RESTART_PAUSE_MS * 2 ** Math.min(quick - 2, 5);
        if (closing) return; // (closed by whatever the report above ran)
        const restart = setTimeout(() => {
          restarts.delete(restart);
          if (closing) return;
          // The port the first Worker picked, when 0 was asked.
          void start(i, addr?.port ?? port, quick, false);
        }, pause);
        restarts.add(restart);
      };
      worker.addEventListener("message", (e) => {
        const m = (e as MessageEvent).data as ToMain;
        if (m?.zev === "listening") {
          listening = true;
          clearTimeout(slot.timer);
          resolve(m.addr);
        } else if (m?.zev === "connections") slot.connections = m.n;
        else if (m?.zev === "closed") slot.closed?.();
        else if (m?.zev === "failed") failed(m.message, m.code);
      });
      worker.addEventListener("error", (e) => {
        // Reported by the Worker itself when it could; never the main thread's error.
        e.preventDefault();
        failed((e as ErrorEvent).message);
      });
    });

  const close = (shutdown?: ShutdownOptions): Promise<void> => {
    if (closing !== undefined) return closing;
    let grace: number;
    try {
      grace = graceMs(shutdown); // a bad argument rejects this call only
    } catch (error) {
      return Promise.reject(error);
    }
    for (const restart of restarts) clearTimeout(restart);
    restarts.clear();
    closing = (async () => {
      // A Worker that failed is gone already (its replacement, if started, is asked).
      await Promise.all(
        slots.filter((slot) => !slot.failed).map((slot) =>
          new Promise<void>((resolve) => {
            const limit = setTimeout(resolve, grace + 5000);
            slot.closed = () => (clearTimeout(limit), resolve());
            slot.worker.postMessage({ zev: "close", gracePeriod: grace } satisfies ToWorker);
          })
        ),
      );
      for (const slot of slots) stop(slot);
      finish();
    })();
    return closing;
  };

  return (async () => {
    try {
      // The first Worker picks the port (when 0 was asked); the others join it.
      addr = await start(0, options.port);
      await Promise.all(Array.from({ length: n - 1 }, (_, i) => start(i + 1, addr!.port)));
    } catch (error) {
      for (const slot of slots) stop(slot);
      throw error;
    }
    return {
      addr: addr!,
      get connections() {
        return slots.reduce((sum, slot) => sum + slot.connections, 0);
      },
      finished,
      close,
      [Symbol.asyncDispose]: () => close(),
    };
  })();
}
