// Day two on a real host through the real engine, one sandbox and one stack
// for the whole file: the CI recipe's commands through deployVllmStack (the
// exported Automation API entry) with a file:// backend this test chooses;
// then `pulumi-vllm status` finds each kind of drift as exactly its step
// (exit 3), `status --repair --yes` re-converges it and `status` exits 0;
// `logs` shows the stand-in's lines and no secret; `smoke` through the
// tunnel. The CLI runs as a user runs it: its own process, the `pulumi` on
// PATH, the backend and passphrase from the environment the test gives.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { bootSandbox, freePort, REPO_ROOT, Sandbox, shutdownSandbox, sshOk } from "../host/sandbox";
import { putStandinWheels, trustMachineCAs } from "../standin/fixtures";
import { ensureEngine, PASSPHRASE, stackConfigFor, writeStackFile } from "./engine";
import { deployVllmStack } from "../../src";
import { readStack, ServerRecord, stepOf } from "../../components/ops/state";

jest.setTimeout(40 * 60 * 1000);

const HF_TOKEN = "hf_opsE2eSecretToken0123456789abcdef";
const STACK = `ops-${process.pid}`;
let sb: Sandbox;
let env: NodeJS.ProcessEnv;
let backendDir: string;
let server: ServerRecord;
const log: string[] = [];

function cli(args: string[]): { code: number | null; out: string; err: string; ms: number } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, "bin", "pulumi-vllm.js"), ...args], { cwd: REPO_ROOT, env, encoding: "utf8", timeout: 20 * 60 * 1000 });
  return { code: r.status, out: r.stdout, err: r.stderr, ms: Date.now() - t0 };
}
function statusJson(): { code: number | null; drifted: string[]; body: any; raw: string } {
  const r = cli(["status", "--stack", STACK, "--json"]);
  let body: any;
  try {
    body = JSON.parse(r.out);
  } catch {
    throw new Error(`status --json printed no JSON (exit ${r.code}):\n${r.out}\n${r.err}`);
  }
  const drifted = body.servers.flatMap((s: any) => s.steps.filter((x: any) => x.state === "drifted").map((x: any) => x.step));
  return { code: r.code, drifted, body, raw: r.out + r.err };
}

beforeAll(async () => {
  const engine = ensureEngine();
  // The user's backend: a file:// directory this test picks (not the engine helper's, not our scripts').
  backendDir = fs.mkdtempSync(path.join(os.tmpdir(), "pv-ops-backend-"));
  env = { ...process.env, ...engine, PULUMI_BACKEND_URL: `file://${backendDir}`, PULUMI_CONFIG_PASSPHRASE: PASSPHRASE };
  sb = await bootSandbox("ops-e2e");
  await trustMachineCAs(sb);
  putStandinWheels(sb, ["0.11.0"]);
  writeStackFile(STACK, stackConfigFor(sb, await freePort(), undefined, { relativeTo: REPO_ROOT }));
  const s = await LocalWorkspace.createOrSelectStack({ stackName: STACK, workDir: REPO_ROOT }, { envVars: env as Record<string, string> });
  await s.setConfig("hfToken", { value: HF_TOKEN, secret: true });
});

afterAll(async () => {
  try {
    if (sb) {
      const s = await LocalWorkspace.selectStack({ stackName: STACK, workDir: REPO_ROOT }, { envVars: env as Record<string, string> }).catch(() => undefined);
      await s?.destroy({ onOutput: (o) => log.push(o) }).catch(() => undefined);
      await s?.workspace.removeStack(STACK, { force: true }).catch(() => undefined);
    }
  } finally {
    fs.rmSync(path.join(REPO_ROOT, `Pulumi.${STACK}.yaml`), { force: true });
    if (backendDir) fs.rmSync(backendDir, { recursive: true, force: true });
    if (sb) await shutdownSandbox(sb);
  }
});

test("the CI recipe through deployVllmStack: a pull request plans and previews, main plans, ups and smokes", async () => {
  const t0 = Date.now();
  const pr = await deployVllmStack({ workDir: REPO_ROOT, stackName: STACK, envVars: env as Record<string, string>, previewOnly: true, onOutput: (o) => log.push(o) });
  expect(pr.plan?.fits).toBe(true);
  expect(pr.preview.create).toBeGreaterThanOrEqual(16);
  expect(pr.up).toBeUndefined();
  const main = await deployVllmStack({ workDir: REPO_ROOT, stackName: STACK, envVars: env as Record<string, string>, onOutput: (o) => log.push(o) });
  expect(main.up?.create).toBeGreaterThanOrEqual(16);
  const lines = main.smoke!.flatMap((s) => s.lines).join("\n");
  expect(lines).toMatch(/through ssh -L/);
  expect(lines).toMatch(/ok {2}models: Qwen\/Qwen2\.5-7B-Instruct {2}\(the vLLM stand-in\)/);
  expect(lines).toMatch(/ok {2}tool call: get_weather/);
  // the stack lives in the backend the test chose
  expect(fs.readdirSync(backendDir)).toContain(".pulumi");
  process.stderr.write(`[ops-timing] deploy (preview + up + smoke) ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
  server = readStack({ stack: STACK, cwd: REPO_ROOT, env })[0];
});

test("status of a converged host: every step ok, exit 0, the server's metrics", () => {
  const r = cli(["status", "--stack", STACK]);
  expect(r.code).toBe(0);
  for (const step of ["toolchain", "swapfile", "earlyoom", "uv-venv", "vllm-install", "launch-unit", "readiness"]) expect(r.out).toMatch(new RegExp(`^  ok +${step} `, "m"));
  expect(r.out).toMatch(/requests running 0, waiting 0, KV cache 0\.0 % used/);
  expect(r.out + r.err).not.toContain(HF_TOKEN);
  process.stderr.write(`[ops-timing] status ${(r.ms / 1000).toFixed(1)}s\n`);
});

// Each drift, made by hand on the host as an operator (or a crash) would.
const p = (step: string, name: string) => stepOf(server, step)!.params[name];
const drifts: [string, string, () => string][] = [
  ["unit stopped", "launch-unit", () => `systemctl stop ${p("launch-unit", "PV_UNIT_NAME")}`],
  ["vLLM killed with SIGKILL", "launch-unit", () => `kill -KILL $(systemctl show -p MainPID --value ${p("launch-unit", "PV_UNIT_NAME")}); for i in $(seq 50); do [ "$(systemctl is-active ${p("launch-unit", "PV_UNIT_NAME")})" != active ] && break; sleep 0.1; done`],
  ["unit file edited", "launch-unit", () => `sed -i 's/^RestartSec=.*/RestartSec=1/' /etc/systemd/system/${p("launch-unit", "PV_UNIT_NAME")} && systemctl daemon-reload`],
  ["env file mode changed", "launch-unit", () => `chmod 0644 ${p("launch-unit", "PV_ENV_FILE")}`],
  ["swap off", "swapfile", () => `swapoff ${p("swapfile", "PV_SWAP_PATH")}`],
  ["fstab line removed", "swapfile", () => `sed -i '\\#^${p("swapfile", "PV_SWAP_PATH")} #d' /etc/fstab`],
  ["earlyoom config edited", "earlyoom", () => `sed -i 's/-m [0-9,]*/-m 50/' /etc/default/earlyoom`],
  ["vLLM uninstalled from the venv", "vllm-install", () => `${p("vllm-install", "PV_UV_BIN")} pip uninstall --python ${p("vllm-install", "PV_VENV_PATH")}/bin/python ${p("vllm-install", "PV_DIST_NAME")}`],
];

describe.each(drifts)("drift: %s", (_what, step, make) => {
  test(`status says ${step} drifted (exit 3, the repair printed); status --repair --yes re-converges; status exits 0`, async () => {
    await sshOk(sb, make());
    const before = statusJson();
    expect({ code: before.code, drifted: before.drifted }).toEqual({ code: 3, drifted: [step] });
    expect(before.body.repair.slice(0, 4)).toEqual(["pulumi", "up", "--stack", STACK]);
    const t0 = Date.now();
    const repair = cli(["status", "--stack", STACK, "--repair", "--yes"]);
    if (repair.code !== 0) throw new Error(`repair exited ${repair.code}:\n${repair.out}\n${repair.err}`);
    // the text report first: the drifted step and the command, then the repair's run and the new report
    expect(repair.out).toMatch(new RegExp(`^  DRIFTED +${step} `, "m"));
    expect(repair.out).toMatch(/drift found\. To re-converge, run:\n {2}pulumi up --stack \S+ --replace /);
    // --repair checks again and exits with that status: 0 is "status then exits 0"
    expect(repair.out.slice(repair.out.indexOf("after the repair:"))).toMatch(/^after the repair:\n(.|\n)*all steps ok\n$/);
    expect(repair.out.slice(repair.out.indexOf("after the repair:"))).not.toMatch(/DRIFTED|FAILED/);
    process.stderr.write(`[ops-timing] repair of ${step} ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
  });
});

test("logs: the stand-in's lines from the unit's journal, every secret redacted", async () => {
  const key = String(server.outputs.apiKey);
  const unit = p("launch-unit", "PV_UNIT_NAME");
  // A line in the unit's journal quoting both secrets (a library echoing its token): root may attribute a message to a unit.
  await sshOk(sb, `printf 'MESSAGE=leak: key=%s token=%s\\nOBJECT_SYSTEMD_UNIT=%s\\n' ${JSON.stringify(key)} ${JSON.stringify(HF_TOKEN)} ${unit} | logger --journald`);
  const raw = await sshOk(sb, `journalctl -u ${unit} --no-pager -o cat | grep -c 'leak: key=${key}'`);
  expect(Number(raw)).toBeGreaterThan(0);
  const r = cli(["logs", "--stack", STACK, "-n", "300"]);
  expect(r.code).toBe(0);
  expect(r.out).toContain("THIS IS vllm-standin, the pulumi-vllm TEST STAND-IN, NOT vLLM");
  expect(r.out).toMatch(/leak: key=\[REDACTED\] token=\[REDACTED\]/);
  expect(r.out + r.err).not.toContain(key);
  expect(r.out + r.err).not.toContain(HF_TOKEN);
  const since = cli(["logs", "--stack", STACK, "--since", "10m", "-n", "5"]);
  expect(since.code).toBe(0);
  expect(since.out.trim().split("\n").length).toBeLessThanOrEqual(5);
});

test("smoke: models, a chat completion and a tool call through an ssh tunnel; a wrong endpoint fails with exit 1", () => {
  const r = cli(["smoke", "--stack", STACK]);
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/through ssh -L \d+:127\.0\.0\.1:\d+ via root@127\.0\.0\.1/);
  expect(r.out).toMatch(/ok {2}chat: /);
  expect(r.out).toMatch(/ok {2}tool call: get_weather/);
  const bad = cli(["smoke", "--stack", STACK, "--endpoint", "http://127.0.0.1:1/v1"]);
  expect(bad.code).toBe(1);
  expect(bad.out).toMatch(/FAIL .*127\.0\.0\.1:1/);
  expect(bad.out + bad.err).not.toContain(String(server.outputs.apiKey));
});

test("npm run smoke still works, as the thin wrapper over the same code", () => {
  const r = spawnSync("npm", ["run", "--silent", "smoke", "--", "--stack", STACK], { cwd: REPO_ROOT, env, encoding: "utf8" });
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/ok {2}tool call: get_weather/);
});
