/** `Deno.serve` answering every request with the same body as examples/http.ts. */
import { parseFlags } from "../../examples/flags.ts";

const { host, port } = parseFlags(Deno.args);
Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
Deno.addSignalListener("SIGINT", () => Deno.exit(0));
Deno.serve({
  hostname: host,
  port,
  onListen: ({ port }) => console.log(`listening on ${host}:${port}`),
}, () => new Response("Hello, World!\n"));
