/**
 * Run under a small descriptor limit. A listener made inside a task; the process's
 * descriptors are used up by files zev does not know about; a client connects; once the
 * loop has parked, an accept made from a timer hits EMFILE, and the files are closed
 * right after: the accept must complete (the pause's retry wakes the parked loop). Every
 * pause is told to onAcceptError, outside any task (which throws: that is reported on
 * stderr, and the listener goes on). Prints a JSON report.
 */
import net from "node:net";
import { closeSync } from "node:fs";
import { useUpDescriptors } from "./descriptors.ts";
import { call, currentTask, listen, sleep, stats } from "../../../mod.ts";

let told = 0;
let taskSeen: string | undefined = "none";
let firstError = "";
// deno-lint-ignore require-await
const listener = await call(async function makesTheListener() {
  return listen({
    hostname: "127.0.0.1",
    port: 0,
    onAcceptError(error) {
      told++;
      taskSeen = currentTask()?.name;
      firstError ||= `${error.code}: ${error.message}`;
      throw new Error("a callback that throws"); // reported on stderr, and the listener goes on
    },
  });
}).done;
const before = stats().acceptPaused;
const files = useUpDescriptors();
closeSync(files.pop()!); // room for the client's socket only
const client = net.connect({ port: listener.addr.port, host: "127.0.0.1" });
await new Promise((r) => client.once("connect", r));
await sleep(50); // the loop parks
const accepted = await new Promise<boolean>((resolve) => {
  setTimeout(() => {
    listener.accept().then(() => resolve(true), () => resolve(false));
    setTimeout(() => {
      for (const fd of files.splice(0)) closeSync(fd);
    }, 20);
    setTimeout(() => resolve(false), 3000);
  }, 0);
});
await sleep(20);
console.log(
  JSON.stringify({
    accepted,
    told,
    paused: stats().acceptPaused - before,
    taskSeen: taskSeen ?? null,
    firstError,
    port: listener.addr.port,
  }),
);
client.destroy();
listener.close();
process.exit(0);
