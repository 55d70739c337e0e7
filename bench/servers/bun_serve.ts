/** `Bun.serve` answering every request with the same body as examples/http.ts. */
import { parseFlags } from "../../examples/flags.ts";

const { host, port } = parseFlags(process.argv.slice(2));
const server = Bun.serve({ hostname: host, port, fetch: () => new Response("Hello, World!\n") });
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
console.log(`listening on ${host}:${server.port}`);
