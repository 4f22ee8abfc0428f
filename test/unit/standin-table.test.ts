// The stand-in refuses removed vLLM flags like the real release would; its
// table must agree with the release history the planner uses.
import * as fs from "fs";
import * as path from "path";
import history from "../../components/plan/data/vllm-flag-history.json";

test("vllm-standin's REMOVED_FLAGS match components/plan/data/vllm-flag-history.json", () => {
  const src = fs.readFileSync(path.join(__dirname, "..", "standin", "vllm_standin", "cli.py"), "utf8");
  const table = /REMOVED_FLAGS = \{([\s\S]*?)\n\}/.exec(src)![1];
  const rows = [...table.matchAll(/"(--[a-z0-9-]+)": \(\((\d+), (\d+), (\d+)\)/g)];
  expect(rows.length).toBeGreaterThanOrEqual(5);
  for (const [, flag, a, b, c] of rows) {
    expect({ flag, removed: `${a}.${b}.${c}` }).toEqual({ flag, removed: (history.flags as Record<string, { removed: string | null }>)[flag].removed });
  }
});
