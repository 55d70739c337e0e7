/**
 * zev: a networking event loop for Deno and Bun, on a Zig epoll/kqueue reactor.
 *
 * Janet's `ev` and `net` in TypeScript: `go`, `call` and `acceptLoop` run supervised
 * tasks; `scope` and `race` run tasks that cannot outlive their work; `listen` and
 * `connect` give streams with backpressure; deadlines, cancellation and channels work
 * across all of them.
 *
 * @example
 * ```ts
 * import { acceptLoop, listen } from "./mod.ts";
 *
 * const listener = listen({ hostname: "127.0.0.1", port: 8080 });
 * await acceptLoop(listener, async (stream) => {
 *   const buf = new Uint8Array(16 * 1024);
 *   for (let n; (n = await stream.read(buf)) !== null;) await stream.write(buf.subarray(0, n));
 * });
 * ```
 *
 * @module
 */

export {
  connect,
  type ConnectOptions,
  listen,
  type ListenOptions,
  type UnixConnectOptions,
  type UnixListenOptions,
} from "./src/net/open.ts";
export { type AcceptOptions, Listener } from "./src/net/listener.ts";
export { type CloseOptions, type ReadOptions, Stream, type TlsInfo, type WriteOptions } from "./src/net/stream.ts";
export {
  type Pem,
  startTls,
  type StartTlsOptions,
  type TlsClientOptions,
  type TlsServerOptions,
} from "./src/net/tls.ts";
export type { Addr, AnyAddr, UnixAddr } from "./src/net/addr.ts";
export type { Handle } from "./src/core/handle.ts";
export {
  type Datagram,
  type DatagramReceiveOptions,
  type DatagramSendOptions,
  DatagramSocket,
  listenDatagram,
  type ListenDatagramOptions,
} from "./src/net/datagram.ts";
export { acceptLoop, type AcceptLoopOptions, type ShutdownOptions } from "./src/server/accept_loop.ts";
export {
  serve,
  type ServeOptions,
  type Server,
  type UnixServeOptions,
  type WorkersServeOptions,
} from "./src/server/serve.ts";
export { workerIndex } from "./src/server/workers.ts";
export {
  call,
  currentTask,
  go,
  setDefaultSupervisor,
  supervise,
  type Supervisor,
  Task,
  type TaskEvent,
  type TaskEventSink,
} from "./src/tasks/task.ts";
export { sleep, type SleepOptions, withDeadline } from "./src/tasks/deadline.ts";
export { gather, type Gathered } from "./src/tasks/gather.ts";
export { type OpenScope, openScope, race, Scope, scope, type ScopeOptions } from "./src/tasks/scope.ts";
export {
  Channel,
  type ChannelWaitOptions,
  type ClauseValue,
  select,
  type SelectClause,
  SelectResult,
} from "./src/tasks/channel.ts";
export { Cancelled, Closed, TimedOut, ZevError } from "./src/core/errors.ts";
export {
  type BackendLabel,
  type Configuration,
  configure,
  type Limits,
  limits,
  raiseFileLimit,
  type Settings,
  type Stats,
  stats,
  type TlsEngine,
} from "./src/core/settings.ts";
