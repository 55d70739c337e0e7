/**
 * Output options shared by the mitata benchmarks: interactive by default;
 * `MITATA_FORMAT=markdown` (set by bench/run.ts) prints tables for bench/RESULTS.md.
 */
import process from "node:process";

export function benchOptions(): { format: "mitata" | "markdown"; colors: boolean } {
  const markdown = process.env.MITATA_FORMAT === "markdown";
  return { format: markdown ? "markdown" : "mitata", colors: !markdown && process.stdout.isTTY === true };
}
