/**
 * A client that makes a zev server park and wake thousands of times, with each request
 * sent at a random moment relative to the server's park: at once after the last reply
 * (the server is still dispatching), after a short spin (while it parks), or after a
 * timer (it has parked). Every reply must come within 2 s: a lost wake is a stall, and
 * the program exits 1 saying where. Usage: wake_client.ts PORT ROUNDS SEED
 */
import net from "node:net";
import process from "node:process";

const [port, rounds, seed] = process.argv.slice(2).map(Number);
let state = seed || 1;
const random = () => ((state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32);
const spin = (us: number) => {
  const end = performance.now() + us / 1000;
  while (performance.now() < end);
};

const socket = net.connect({ port, host: "127.0.0.1", noDelay: true });
await new Promise((r) => socket.once("connect", r));
const counts = { now: 0, spin: 0, timer: 0 };
for (let i = 0; i < rounds; i++) {
  const r = random();
  if (r < 0.3) counts.now++;
  else if (r < 0.65) (counts.spin++, spin(random() * 150));
  else (counts.timer++, await new Promise((res) => setTimeout(res, random() * 3)));
  const reply = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 2000);
    socket.once("data", () => (clearTimeout(timer), resolve(true)));
  });
  socket.write("x");
  if (!(await reply)) {
    console.log(`stall: no reply to request ${i + 1} of ${rounds} within 2 s (a lost wake)`);
    process.exit(1);
  }
}
console.log(
  `${rounds} round trips: ${counts.now} sent at once, ${counts.spin} after a spin, ${counts.timer} after a timer`,
);
socket.destroy();
