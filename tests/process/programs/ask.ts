/**
 * For the serving programs: one connection that sends `message` and resolves with the
 * whole reply, or with "" if it is refused or no end comes within `timeoutMs`.
 */
import net from "node:net";

export function ask(port: number, message: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    let reply = "";
    const socket = net.connect({ port, host: "127.0.0.1" }, () => socket.write(message));
    const timer = setTimeout(() => (socket.destroy(), resolve("")), timeoutMs);
    socket.on("data", (d) => (reply += d));
    socket.on("close", () => (clearTimeout(timer), resolve(reply)));
    socket.on("error", () => {});
  });
}
