// `pulumi-vllm plan --stack X` next to the stack's last measured startup figures, read through the
// real `pulumi` CLI (the engine of scripts/ensure-pulumi.sh, a file backend of its own). The stack's
// state is imported (`pulumi stack import`) with the `measured` output a readiness gate produced,
// so no host is needed; the readiness side is tested on a real host in test/host/readiness.test.ts.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Writable } from "stream";
import { ensureEngine } from "./engine";
import { REPO_ROOT } from "../host/sandbox";
import { main } from "../../components/cli/main";

jest.setTimeout(300_000);

const STACK = "planner-measured";
let dir: string;

function pulumi(args: string[]): string {
  return execFileSync("pulumi", [...args, "--cwd", dir, "--non-interactive"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: process.env });
}

async function plan(args: string[]): Promise<{ code: number; out: string }> {
  let text = "";
  const out = new Writable({ write(c, _e, cb) { text += String(c); cb(); } });
  const code = await main(["plan", "--stack", STACK, "--dir", dir, ...args], out as never, out as never);
  return { code, out: text };
}

function importMeasured(measured: Record<string, number> | undefined): void {
  const urn = `urn:pulumi:${STACK}::pulumi-vllm::pulumi:pulumi:Stack::pulumi-vllm-${STACK}`;
  const state = {
    version: 3,
    deployment: {
      manifest: { time: new Date().toISOString(), magic: "", version: "v3.259.0" },
      resources: [{ urn, custom: false, type: "pulumi:pulumi:Stack", outputs: measured ? { measured } : {} }],
    },
  };
  const f = path.join(dir, "state.json");
  fs.writeFileSync(f, JSON.stringify(state));
  pulumi(["stack", "import", "--file", f, "--stack", STACK, "--force"]);
}

beforeAll(() => {
  ensureEngine();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "pv-planner-measured-"));
  fs.copyFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), path.join(dir, "Pulumi.yaml"));
  // The rig's stack, pinned to a release and settings where it fits (the plan's figures are what we compare).
  const rig = fs.readFileSync(path.join(REPO_ROOT, "Pulumi.rig.yaml"), "utf8").replace("version: 0.33.0", "version: 0.19.1");
  fs.writeFileSync(path.join(dir, `Pulumi.${STACK}.yaml`), rig);
  pulumi(["stack", "init", STACK, "--secrets-provider", "passphrase"]);
});

afterAll(() => {
  try {
    pulumi(["stack", "rm", STACK, "--yes", "--force"]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("no measured output yet: the plan as always, no comparison", async () => {
  importMeasured(undefined);
  const r = await plan([]);
  expect(r.out).toContain("Verdict: fits.");
  expect(r.out).not.toContain("Plan vs measured");
});

test("measured figures within 10 %: shown next to the plan, no warning; --json carries them", async () => {
  const p = JSON.parse((await plan(["--json", "--no-measured"])).out);
  const near = { weightsGiB: p.weightsGiB * 1.02, availableKvGiB: p.kvCacheGiB * 0.97, kvCacheTokens: Math.round(p.kvCacheTokens * 0.97), maxConcurrency: 3.1 };
  importMeasured(near);
  const r = await plan([]);
  expect(r.out).toMatch(/Plan vs measured \(vLLM's own figures at the stack's last start, busiest rank\):\n {2}weights GiB +plan [\d.]+ +measured [\d.]+ +\(-2\.0 %\)\n {2}KV cache GiB +plan [\d.]+ +measured [\d.]+ +\(\+3\.\d %\)/);
  expect(r.out).not.toMatch(/! measured:/);
  const j = JSON.parse((await plan(["--json"])).out);
  expect(j.measured).toEqual(near);
  expect(j.planVsMeasured.map((x: { what: string }) => x.what)).toEqual(["weights GiB", "KV cache GiB", "KV cache tokens"]);
  // --no-measured: not read at all
  expect(JSON.parse((await plan(["--json", "--no-measured"])).out).measured).toBeNull();
});

test("a prediction more than 10 % off what vLLM reported is a warning that says so", async () => {
  const p = JSON.parse((await plan(["--json", "--no-measured"])).out);
  importMeasured({ availableKvGiB: Math.round(p.kvCacheGiB * 0.8 * 100) / 100 });
  const r = await plan([]);
  expect(r.out).toMatch(/! measured: the plan's KV cache GiB \([\d.]+\) is 2[45] % above what vLLM reported at the last start \([\d.]+\) -> trust vLLM's figure/);
  // the verdict is the plan's own: measured figures inform, they do not decide
  expect(r.code).toBe(0);
});
