// Every host step script (and the sandbox scripts) passes shellcheck.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { fileTimer, REPO_ROOT } from "./sandbox";

const DIRS = ["components/host/scripts", "components/host/scripts/lib", "scripts/sandbox"];
const scripts = DIRS.flatMap((d) =>
  fs
    .readdirSync(path.join(REPO_ROOT, d))
    .filter((f) => f.endsWith(".sh"))
    .map((f) => path.join(d, f)),
);
const timer = fileTimer("shellcheck.test.ts");
afterAll(() => timer.done());

test("shellcheck is installed", () => {
  const r = spawnSync("shellcheck", ["--version"], { encoding: "utf8" });
  if (r.error || r.status !== 0) throw new Error("shellcheck is not installed (apt-get install -y shellcheck)");
});

test("there are step scripts to check", () => {
  for (const s of ["toolchain.sh", "swapfile.sh", "earlyoom.sh"]) {
    expect(scripts).toContain(path.join("components/host/scripts", s));
  }
});

test.each(scripts)("%s passes shellcheck", (script) => {
  const r = spawnSync("shellcheck", ["--shell=bash", "--severity=style", "--external-sources", script], {
    cwd: REPO_ROOT,
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`shellcheck ${script}:\n${r.stdout}${r.stderr}`);
});

test.each(scripts)("%s is a bash script with strict mode", (script) => {
  const text = fs.readFileSync(path.join(REPO_ROOT, script), "utf8");
  expect(text.startsWith("#!/usr/bin/env bash\n")).toBe(true);
  // A library is included into a step script, which sets the mode.
  if (!script.includes("/lib/")) expect(text).toMatch(/^set -euo pipefail$/m);
});
