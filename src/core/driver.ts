/**
 * The loop driver: one loop per JS thread, polled from JS without ever blocking
 * the JS thread, and costing what the runtime's own sockets cost at every load.
 *
 * - While polls find events, it polls again with timeout 0 from a macrotask
 *   (`setImmediate`), so a busy server never pays for a wake, and timers and the
 *   runtime's own I/O run between polls.
 * - When a poll comes back empty, it parks (ffi/parker.ts): where io_uring works, the
 *   kernel wakes the JS thread itself, inside the runtime's own wait, through a socket of
 *   the runtime's own; elsewhere another thread waits. A turn woken that way parks once
 *   the tasks it woke have run, so their answers leave first. `spinMicros` (opt-in) keeps
 *   polling a while before parking, trading CPU for latency.
 * - It keeps the process alive only while something waits on the network: a pending
 *   read, write, accept, connect or close on a referenced stream or listener (`hold`),
 *   or bytes still queued for the kernel. A program whose last wait ends exits, as with
 *   the runtimes' own sockets.
 * - Operations that complete at once spend a per-turn budget (`spend`); past it they
 *   wait for the next turn (`defer`), so a peer that is always ready cannot starve
 *   timers and other tasks.
 *
 * It runs outside every task: what it resolves continues in the awaiting task's context.
 *
 * @module
 */

import process from "node:process";
import {
  BACKEND_CODE,
  type BackendChoice,
  backendChoice,
  backendFallback,
  type BackendName,
  HANDLE_INDEX_BITS,
  type Native,
  native,
  openParker,
  type Parker,
  STATS,
} from "../../ffi/mod.ts";
import { abiError, setLastErrno, setTlsDetail } from "./errors.ts";
import { live, outsideTasks, reportInternal } from "./context.ts";
import { EVENTS_PER_POLL } from "./limits.ts";

/** Something with a handle that the driver delivers events to. */
export interface Target {
  readonly handle: number;
  onEvent(flags: number): void;
}

/** The bits of a handle that index the loop's table (and the driver's targets). */
const INDEX_MASK = (1 << HANDLE_INDEX_BITS) - 1;

/** "io_uring", and why this kernel refuses it. */
function ioUringRefused(): string {
  const code = native.sym.zev_io_uring_unavailable();
  return `io_uring, because ${
    code === 0 ? "it needs Linux 6.0 and a kernel that allows io_uring" : backendFallback(code)
  }`;
}

/**
 * Operations that may complete at once in one turn, before the rest wait for the next.
 * A turn that dispatched events grants two more per event, so a busy server answering
 * each event at once is never held back. At about a microsecond per operation this
 * keeps a timer waiting at most a millisecond or so; a budget of 128 (tokio's) cost a
 * write-and-read loop 20 % in Bun for the extra turns (docs/design/WAKE.md).
 */
export const TURN_BUDGET = 1024;

/** The loop's counters (zig/loop.zig `Stats`). */
export interface Stats {
  /** Connections accepted. */
  accepted: number;
  /** Connections that died between handshake and accept (ECONNABORTED...) and were skipped. */
  acceptSkipped: number;
  /** Times a listener was paused because the process ran out of descriptors (EMFILE). */
  acceptPaused: number;
  /** Connections closed at once because the handle table was full or the kernel would not watch them. */
  acceptRejected: number;
  /** Native polls. */
  polls: number;
  /** Kernel events those polls returned. */
  events: number;
  /** Listeners and streams open in the loop. */
  liveHandles: number;
  /** Bytes held in write queues, waiting for the kernel. */
  queuedBytes: number;
  /**
   * Parks found with work waiting and no wake on its way: a wake the kernel lost or
   * delayed. Each call of `stats()` looks; 0 on a healthy loop.
   */
  stalls: number;
  /** The kernel interface the loop waits on ("epoll", "kqueue" or "io_uring"). */
  backend: BackendLabel;
  /** Tasks started and not yet settled (`go`, `call`, scopes, handlers...). */
  tasks: number;
  /** zev's timers pending (`sleep`, `withDeadline`). */
  timers: number;
  /** TLS handshakes of listeners that failed or timed out (told to `onAcceptError`). */
  tlsHandshakesFailed: number;
}

/** A backend as users name it. */
export type BackendLabel = "epoll" | "kqueue" | "io_uring";

type Counter = Exclude<keyof Stats, "backend" | "tasks" | "timers" | "tlsHandshakesFailed">;

/** The counters in the order the library writes them; each must be a key of `Stats`. */
const STAT_KEYS: readonly Counter[] = STATS;

const enum State {
  /** Nothing open: no poll is coming, and none is needed. */
  Idle,
  /** A poll is coming in a macrotask. */
  Scheduled,
  /** Waiting for the parker's wake (or the resume timer of a paused listener). */
  Parked,
}

export class Driver {
  readonly native: Native = native;
  readonly loop: number;
  readonly eventsPerPoll: number;
  /** How long empty polls continue before parking (opt-in; see `configure`). */
  spinMicros = 0;
  #parker: Parker | undefined;
  #events: Uint8Array;
  #ev32: Uint32Array;
  #targets: (Target | undefined)[] = [];
  #open = 0;
  #holds = 0;
  #state = State.Idle;
  #idleSince = -1;
  #budget = TURN_BUDGET;
  #deferred: (() => void)[] = [];
  #resumeTimer: ReturnType<typeof setTimeout> | undefined;
  #parkFailed = false;
  /** A listener may be paused for EMFILE (see `#armResumeTimer`). */
  #maybePaused = false;
  #stats = new Float64Array(STAT_KEYS.length);

  private constructor() {
    const choice = backendChoice();
    const loop = native.sym.zev_loop_open_backend(0, BACKEND_CODE[choice]);
    if (loop < 0) {
      throw abiError(loop, `opening the event loop${choice === "io_uring" ? ` on ${ioUringRefused()}` : ""}`);
    }
    this.loop = loop;
    this.eventsPerPoll = EVENTS_PER_POLL;
    this.#events = new Uint8Array(this.eventsPerPoll * 8);
    this.#ev32 = new Uint32Array(this.#events.buffer);
  }

  /** The kernel interface the loop waits on (`ZEV_BACKEND`, `configure({ backend })`). */
  get backend(): BackendName {
    return native.sym.zev_backend(this.loop) === 1 ? "io_uring" : "poll";
  }

  /** `backend` as users name it. */
  get backendLabel(): BackendLabel {
    return this.backend === "io_uring" ? "io_uring" : process.platform === "linux" ? "epoll" : "kqueue";
  }

  /** Why the loop runs on the poll backend although "auto" asked for io_uring. */
  get backendReason(): string | undefined {
    const code = native.sym.zev_backend_fallback(this.loop);
    return code === 0 ? undefined : backendFallback(code);
  }

  /** Moves the loop to another backend; only while nothing is open on it. */
  switchBackend(choice: BackendChoice): void {
    if (this.#open > 0) {
      throw new Error(
        `zev: the backend can change only before the first listener or stream (${this.#open} open now); ` +
          "set ZEV_BACKEND, or call configure({ backend }) first",
      );
    }
    const r = native.sym.zev_loop_switch_backend(this.loop, BACKEND_CODE[choice]);
    if (r < 0) throw abiError(r, `moving the event loop${choice === "io_uring" ? ` to ${ioUringRefused()}` : ""}`);
  }

  /** Opens the loop and everything it will need to park (never acquired later). */
  static async open(): Promise<Driver> {
    const driver = new Driver();
    driver.#parker = await openParker(driver.loop, driver.#onWake);
    return driver;
  }

  /** How this loop parks, and why not with the kernel's wake if it cannot. */
  get parker(): Parker {
    return this.#parker!;
  }

  /** Listeners and streams registered. */
  get open(): number {
    return this.#open;
  }

  /** Waits that keep the process alive now. */
  get holds(): number {
    return this.#holds;
  }

  register(target: Target): void {
    this.#targets[target.handle & INDEX_MASK] = target;
    this.#open++;
    this.kick();
  }

  /** Forgets a target; false if it was not registered (already closed). */
  unregister(target: Target): boolean {
    const i = target.handle & INDEX_MASK;
    if (this.#targets[i] !== target) return false;
    this.#targets[i] = undefined;
    this.#open--;
    return true;
  }

  /** A wait begins that keeps the process alive until `release`. */
  hold(): void {
    if (this.#holds++ === 0 && this.#state === State.Parked) this.#updateKeepAlive();
  }

  release(): void {
    if (this.#holds <= 0) throw new Error("zev: internal error: release without hold");
    if (--this.#holds === 0 && this.#state === State.Parked) this.#updateKeepAlive();
  }

  /**
   * A write completed with bytes left in a stream's queue, outside any wait: a parked
   * driver keeps the process alive until the kernel has them (the park decided before).
   */
  queued(): void {
    if (this.#state === State.Parked && this.#holds === 0) this.#updateKeepAlive();
  }

  /** Makes sure a poll is coming: a parked driver is woken by the loop's next event. */
  kick(): void {
    if (this.#state === State.Idle) this.#schedule();
  }

  /**
   * Takes one operation that completes at once from this turn's budget; false when the
   * budget is spent, and the operation must `defer` to the next turn.
   */
  spend(): boolean {
    return this.#budget-- > 0;
  }

  /** Runs `fn` at the start of the next turn (see `spend`). */
  defer(fn: () => void): void {
    this.#deferred.push(fn);
    if (this.#state !== State.Scheduled) this.#schedule();
  }

  /** A listener was paused (EMFILE): a parked driver re-reads when to wake for it. */
  pausesChanged(): void {
    this.#maybePaused = true;
    if (this.#state === State.Parked) this.#armResumeTimer();
  }

  #schedule(): void {
    this.#leavePark();
    this.#state = State.Scheduled;
    outsideTasks(scheduleTick, this.#tick);
  }

  #tick = (): void => this.#turn(false);

  /** One turn of the driver: deferred work, a poll, dispatch, then poll again or park. */
  #turn(woken: boolean): void {
    this.#state = State.Idle;
    this.#budget = TURN_BUDGET;
    if (this.#deferred.length > 0) this.#runDeferred();
    // With the kernel's wake, a poll that finds nothing parks in the same call (after a
    // wake, events are there: a plain poll).
    const kernelWake = this.#parker!.kind === "io_uring" && this.spinMicros === 0;
    const n = this.#poll(kernelWake && !woken);
    if (n > 0) {
      this.#dispatch(n);
      if (this.#state !== State.Idle) return; // deferred work: a turn is coming
      // After a wake that found a few events, park at once rather than a turn later: a
      // macrotask and a poll less per request at light load. Events that came meanwhile
      // fire the wake straight away.
      if (!(woken && kernelWake && n < this.eventsPerPoll)) return this.#schedule();
    } else if (n < 0) {
      reportInternal(abiError(n, "polling the event loop"));
    }
    if (this.#state !== State.Idle) return; // deferred work: a turn is coming
    if (this.#open === 0) return this.#parker!.keepAlive(false); // nothing to wait for: idle
    if (this.spinMicros > 0) {
      const now = performance.now();
      if (this.#idleSince < 0) this.#idleSince = now;
      if ((now - this.#idleSince) * 1000 < this.spinMicros) return this.#schedule();
    }
    if (woken && kernelWake) return this.#parkAfterTasks();
    this.#park(kernelWake && n === 0); // not woken: that poll parked if it found nothing
  }

  /**
   * Parks after the microtasks this turn queued: the tasks it woke write their answers
   * before the park's system call rather than after it: a reply a few µs sooner at light
   * load, to a peer that has had less time to fall idle (docs/design/WAKE.md).
   */
  #parkAfterTasks(): void {
    this.#state = State.Parked;
    this.#idleSince = -1;
    queueMicrotask(this.#parkNow);
  }

  /** Bound once: a closure per woken turn would be garbage on every light request. */
  #parkNow = (): void => {
    // Unless deferred work ended the park meanwhile (a turn is coming then); no other
    // park can begin before this microtask, since turns run in macrotasks.
    if (this.#state === State.Parked) this.#park(false);
  };

  /** Polls without waiting (and parks when `park` and nothing is there); grants budget. */
  #poll(park: boolean): number {
    const n = park
      ? native.sym.zev_poll_park(this.loop, this.#events, this.eventsPerPoll)
      : native.sym.zev_poll(this.loop, this.#events, this.eventsPerPoll, 0);
    if (n > 0) {
      this.#idleSince = -1;
      this.#budget += 2 * n;
    }
    return n;
  }

  #runDeferred(): void {
    const fns = this.#deferred;
    this.#deferred = [];
    for (const fn of fns) {
      try {
        fn();
      } catch (error) {
        reportInternal(error);
      }
    }
  }

  #dispatch(n: number): void {
    const ev = this.#ev32;
    const targets = this.#targets;
    for (let i = 0; i < n; i++) {
      const handle = ev[2 * i];
      const target = targets[handle & INDEX_MASK];
      // A handle closed earlier in this batch is gone, and its slot may hold a new one.
      if (target === undefined || target.handle !== handle) continue;
      try {
        target.onEvent(ev[2 * i + 1]);
      } catch (error) {
        // Targets reject their own operations; this is a bug in zev, reported, not lost.
        reportInternal(error);
      }
    }
  }

  /** Parks (`armed`: the poll that found nothing parked already). */
  #park(armed: boolean): void {
    this.#state = State.Parked;
    this.#idleSince = -1;
    const r = armed ? 0 : this.#parker!.park();
    if (r < 0) {
      // No park possible now (the kernel is out of memory): poll again shortly instead.
      if (!this.#parkFailed) {
        reportInternal(abiError(r, "parking the event loop (polling every millisecond until it works)"));
      }
      this.#parkFailed = true;
      this.#resumeTimer = outsideTasks(setTimeout, this.#onWake, 1);
    } else {
      this.#parkFailed = false;
      this.#armResumeTimer();
    }
    this.#updateKeepAlive();
  }

  /**
   * While parked, a timer ends the park when a listener paused for EMFILE is due. Only
   * asked of the loop after a pause was reported (`pausesChanged`) and until none is left.
   */
  #armResumeTimer(): void {
    if (this.#resumeTimer !== undefined) clearTimeout(this.#resumeTimer);
    this.#resumeTimer = undefined;
    if (!this.#maybePaused) return;
    const ms = native.sym.zev_park_timeout(this.loop, -1);
    if (ms < 0) this.#maybePaused = false;
    else this.#resumeTimer = outsideTasks(setTimeout, this.#onWake, ms);
  }

  /** Leaving a park: the wake may stay armed (a later one is ignored), and stays
   * referenced while the driver runs (its macrotasks keep the process alive anyway). */
  #leavePark(): void {
    if (this.#state !== State.Parked) return;
    if (this.#resumeTimer !== undefined) clearTimeout(this.#resumeTimer);
    this.#resumeTimer = undefined;
  }

  /** A park keeps the process alive while waits are held or bytes are still queued. */
  #updateKeepAlive(): void {
    this.#parker!.keepAlive(this.#holds > 0 || native.sym.zev_queued(this.loop) > 0);
  }

  #onWake = (): void => {
    if (this.#state !== State.Parked) return; // a wake from an earlier park
    this.#leavePark();
    this.#turn(true);
  };

  /** The driver's state in words, for a test that stalled to say where it stood. */
  describe(): string {
    const state = ["idle", "scheduled", "parked"][this.#state];
    return `driver ${state}, ${this.#holds} waits held, ${this.#open} open, ${this.#deferred.length} deferred, ` +
      `parker ${this.#parker!.kind} (${this.#parker!.keepingAlive ? "" : "not "}keeping alive` +
      `${this.#parkFailed ? ", failing: polling every millisecond" : ""})`;
  }

  stats(): Stats {
    const out = this.#stats;
    native.sym.zev_stats(this.loop, new Uint8Array(out.buffer), out.length);
    const stats = { backend: this.backendLabel, ...live } as Stats;
    STAT_KEYS.forEach((key, i) => (stats[key] = out[i]));
    return stats;
  }
}

function scheduleTick(tick: () => void): void {
  setImmediate(tick);
}

/** This thread's driver. */
setLastErrno(() => native.sym.zev_last_errno());
const detailBuf = new Uint8Array(256);
setTlsDetail(() => {
  const n = native.sym.zev_tls_detail(driver.loop, detailBuf, detailBuf.length);
  return n > 0 ? new TextDecoder().decode(detailBuf.subarray(0, n)) : "";
});
export const driver: Driver = await Driver.open();

/**
 * Schedules `fn` for the driver's next turn, however often it is asked for before then:
 * a burst of requests (accepts, receives, gives) costs one service pass, not one each.
 */
export function onNextTurn(fn: () => void): () => void {
  let queued = false;
  const run = (): void => {
    queued = false;
    fn();
  };
  return (): void => {
    if (queued) return;
    queued = true;
    driver.defer(run);
  };
}
