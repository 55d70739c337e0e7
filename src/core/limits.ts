/**
 * Every bound the TypeScript enforces, from one place: the library's (zig/limits.zig,
 * read once through `zev_limit`), and the few that only the TypeScript has.
 *
 * @module
 */

import { LIMIT, native } from "../../ffi/mod.ts";

const get = native.sym.zev_limit;

/** Kernel events one poll takes. */
export const EVENTS_PER_POLL: number = get(LIMIT.eventsPerPoll);
/** Connections one accept call takes (a listener's batch). */
export const ACCEPT_BATCH: number = get(LIMIT.acceptBatch);
/** Write calls one stream may have pending; past it, a write is refused and the write side fails. */
export const MAX_PENDING_WRITES: number = get(LIMIT.maxPendingWrites);
/** Accepts one listener may have pending (as many as a stream's writes). */
export const MAX_PENDING_ACCEPTS: number = MAX_PENDING_WRITES;
/** Receives, and sends, one UDP socket may have pending (as many as a stream's writes). */
export const MAX_PENDING_DATAGRAMS: number = MAX_PENDING_WRITES;
/** The most a stream's write queue can be set to, in bytes. */
export const MAX_WRITE_QUEUE_BYTES: number = get(LIMIT.maxWriteQueueBytes);
/** Longest Unix socket path, in bytes. */
export const MAX_UNIX_PATH: number = get(LIMIT.maxUnixPath);
/** Most bytes one UDP datagram carries. */
export const MAX_DATAGRAM_BYTES: number = get(LIMIT.maxDatagramBytes);
/**
 * Workers one `serve({ workers })` runs: loops one process holds (`maxLoops`), less the
 * main thread's.
 */
export const MAX_WORKERS: number = get(LIMIT.maxLoops) - 1;
/**
 * The most one `stream.read()` without a buffer returns: the size of the one buffer it
 * reads into, shared by every stream of the thread.
 */
export const READ_CHUNK_BYTES = 64 * 1024;
