// Prints the planner's accuracy on the public startup cases
// (test/unit/data/vllm-startup-cases.json) and, with --write, puts the table
// into README.md between the planner-accuracy markers, so the README's
// figures are computed, never typed. `npm run planner:accuracy [-- --write]`.
import * as fs from "fs";
import * as path from "path";
import { accuracy, accuracyTable } from "../test/unit/data/planner-accuracy";

export const BEGIN = "<!-- planner-accuracy:begin (npm run planner:accuracy -- --write) -->";
export const END = "<!-- planner-accuracy:end -->";

const { rows } = accuracy();
for (const r of rows) {
  const err = r.relError === null ? "" : `${(r.relError * 100).toFixed(1)} %`;
  console.log(
    `${r.verdictRight ? "ok " : "BAD"} ${r.id.padEnd(46)} ${r.version.padEnd(9)} ${r.outcome.padEnd(8)} logged ${String(r.loggedKvGiB ?? "-").padEnd(6)} KV ${r.kvLowGiB.toFixed(2)}-${r.kvHighGiB.toFixed(2)} (${r.kvGiB.toFixed(2)}) ${err}`,
  );
}
const table = accuracyTable();
console.log("\n" + table);
if (process.argv.includes("--write")) {
  const readme = path.join(__dirname, "..", "README.md");
  const text = fs.readFileSync(readme, "utf8");
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md has no ${BEGIN} ... ${END} block`);
  fs.writeFileSync(readme, text.slice(0, a + BEGIN.length) + "\n" + table + "\n" + text.slice(b));
  console.log("README.md updated");
}
