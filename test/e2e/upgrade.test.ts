// Upgrade from the previous release (0.1.0, commit 1dc4814) with the real
// engine: a stack converged by the old program (SingleHost, commands named
// after their step, the API key at the top of the stack) previews with the
// new program (VllmServer, names derived from the component) without creating,
// replacing or deleting anything: the aliases hold. Only the program's shape
// differs: the old program's files run with today's config, planner,
// renderers and step scripts.
// Then: the new program's first up restarts vLLM exactly once, for two reasons
// in one step: the release's one venv (at host.venvPath) moves to a versioned
// venv, venvPath becoming a link to it, and vLLM, which 0.1.0 ran as root, now
// runs as its own user in systemd's sandbox (the readiness gate, whose secrets
// digest became a keyed one, waits for it); the next up changes nothing. A
// serving change's `pulumi preview --diff` names the flag and its value and
// does not repeat it under `delete`, and destroy cleans the host.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { EngineEvent, LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { bootSandbox, freePort, REPO_ROOT, Sandbox, shutdownSandbox, sshOk, sshRun } from "../host/sandbox";
import { NEWEST_RECORD, putStandinWheels, trustMachineCAs } from "../standin/fixtures";
import { ensureEngine, stackConfigFor } from "./engine";
import { openProjectStack, opsOf, writeProjectStackFile } from "./projects";

jest.setTimeout(20 * 60 * 1000);

const RELEASE = "1dc4814";
const RELEASE_SHAPE = [
  "index.ts",
  "Pulumi.yaml",
  "tsconfig.json",
  "package.json",
  "components/topologies/single-host.ts",
  "components/topologies/slurm-cluster.ts",
  "components/host/host-step.ts",
  "components/host/steps.ts",
  "components/host/connection.ts",
];
let sb: Sandbox;
let port: number;
let oldDir: string;
let stack: Stack;
const name = `e2e-upgrade-${process.pid}`;
const newStackFile = path.join(REPO_ROOT, `Pulumi.${name}.yaml`);

async function standinPid(): Promise<number> {
  return JSON.parse(await sshOk(sb, NEWEST_RECORD)).pid;
}

beforeAll(async () => {
  sb = await bootSandbox("upgrade");
  port = await freePort();
  await trustMachineCAs(sb);
  putStandinWheels(sb, ["0.11.0"]);
  // The previous release's program shape (the stack program, the topologies, the step components and
  // their connection), on today's everything else: config, planner, renderers, step scripts and their loader.
  oldDir = fs.mkdtempSync(path.join(os.tmpdir(), "pv-release-"));
  fs.cpSync(path.join(REPO_ROOT, "components"), path.join(oldDir, "components"), { recursive: true });
  fs.rmSync(path.join(oldDir, "components", "api"), { recursive: true, force: true });
  for (const file of RELEASE_SHAPE) fs.writeFileSync(path.join(oldDir, file), execFileSync("git", ["show", `${RELEASE}:${file}`], { cwd: REPO_ROOT, encoding: "utf8" }));
  fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(oldDir, "node_modules"));
});

afterAll(async () => {
  try {
    if (stack) await stack.workspace.removeStack(stack.name, { force: true }).catch(() => undefined);
  } finally {
    fs.rmSync(newStackFile, { force: true });
    if (oldDir) fs.rmSync(oldDir, { recursive: true, force: true });
    if (sb) await shutdownSandbox(sb);
  }
});

test("1. the previous release converges the stack", async () => {
  stack = await openProjectStack(oldDir, name, stackConfigFor(sb, port));
  // its TypeScript is type-checked against today's modules: compile it only
  process.env.PULUMI_NODEJS_TRANSPILE_ONLY = "true";
  const r = await stack.up().finally(() => delete process.env.PULUMI_NODEJS_TRANSPILE_ONLY);
  expect(r.summary.result).toBe("succeeded");
  const out = await stack.outputs();
  expect(out.endpoint.value).toBe(`http://127.0.0.1:${port}/v1`);
});

let pid: number;
test("2. with the new program, preview deletes nothing and replaces only the readiness gate; it adds the secrets digest's key", async () => {
  pid = await standinPid();
  expect(JSON.parse(await sshOk(sb, NEWEST_RECORD)).identity.user).toBe("root");
  // the same stack (same backend, same encryption salt), now run by this checkout's program
  fs.copyFileSync(path.join(oldDir, `Pulumi.${name}.yaml`), newStackFile);
  stack = await LocalWorkspace.selectStack({ stackName: name, workDir: REPO_ROOT }, { envVars: ensureEngine() });
  const events: EngineEvent[] = [];
  await stack.preview({ onEvent: (e) => events.push(e) });
  const ops = opsOf(events).filter((o) => !o.includes("pulumi:pulumi:Stack"));
  // The key of the secrets' digest is new (a child of the server); the gate's triggers (the
  // unit's command, the digest) changed, so the gate is replaced: its delete does nothing.
  // "op type::name" without the parents' types; a replaced resource shows under its old URN and,
  // through its alias, its new one.
  const short = (o: string) => o.replace(/ [^ ]*\$/, " ");
  expect([...new Set(ops.filter((o) => !o.startsWith("update ")).map(short))].sort()).toEqual([
    "create random:index/randomBytes:RandomBytes::vllm-trigger-key",
    "replace command:remote:Command::readiness",
    "replace command:remote:Command::vllm-launch-readiness",
  ]);
  // Components record their settings as inputs now (an update of the component: nothing runs).
  // Commands: versioned venvs change the venv steps' parameters (uv alone; vLLM into a venv of its own)
  // and the launch step's (the link; User=, the sandbox, the service user's parameters): updates, one restart.
  const commands = ops.filter((o) => o.includes("command:remote:Command") && o.includes("pulumi-vllm:index:VllmServer"));
  expect(commands.map((o) => o.split("::").pop()).sort()).toEqual(["vllm-launch-readiness", "vllm-launch-unit", "vllm-uv-venv", "vllm-vllm-install"]);
});

test("3. the new program's first up restarts vLLM once: from a versioned venv (venvPath a link), as its own user; the next up changes nothing", async () => {
  const since = (await sshOk(sb, "date +%s")).trim();
  const r = await stack.up();
  expect(r.summary.resourceChanges?.create ?? 0).toBe(1);
  expect(r.summary.resourceChanges?.replace ?? 0).toBe(1);
  expect(r.summary.resourceChanges?.delete ?? 0).toBe(0);
  const rec = JSON.parse(await sshOk(sb, NEWEST_RECORD));
  expect(rec.pid).not.toBe(pid);
  expect(rec.identity.user).toBe("vllm");
  expect(rec.writes["/etc"]).toBe("EROFS");
  // exactly one start of the server since the up began
  const starts = await sshOk(sb, `journalctl -u vllm.service --since @${since} -o cat --no-pager | grep -c 'THIS IS vllm-standin' || true`);
  expect(starts.trim()).toBe("1");
  pid = rec.pid;
  // it runs from /opt/pulumi-vllm/venvs/0.11.0-py3.11
  expect((await sshOk(sb, "readlink /opt/pulumi-vllm/venv")).trim()).toBe("/opt/pulumi-vllm/venvs/0.11.0-py3.11");
  expect((await sshOk(sb, "systemctl is-active vllm.service")).trim()).toBe("active");
  // the old venv went with its records (the rollback target until the new server answered)
  expect((await sshOk(sb, "ls /opt/pulumi-vllm")).trim().split("\n").sort()).toEqual(["uv", "venv", "venvs"]);
  expect((await sshRun(sb, "grep -l '^venv=/opt/pulumi-vllm/venv$' /var/lib/pulumi-vllm/*/*.state")).stdout).toBe("");
  const again = await stack.up();
  expect(Object.keys(again.summary.resourceChanges ?? {}).filter((k) => k !== "same")).toEqual([]);
  expect(await standinPid()).toBe(pid);
  const out = await stack.outputs();
  expect(out.endpoint.value).toBe(`http://127.0.0.1:${port}/v1`);
  expect(out.apiKey.secret).toBe(true);
});

test("4. preview --diff of a max-model-len change names the flag and value, and shows no delete diff", async () => {
  const c = stackConfigFor(sb, port, (x) => (x.serving = { ...x.serving, maxModelLen: 4096 }));
  writeProjectStackFile(REPO_ROOT, name, c);
  const out = execFileSync("pulumi", ["preview", "--diff", "--stack", name, "--non-interactive", "--color", "never"], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...ensureEngine() },
    encoding: "utf8",
  });
  expect(out).toMatch(/maxModelLen\s*:\s*8192\s*=>\s*4096/);
  expect(out).toMatch(/"--max-model-len 8192"\s*=>\s*"--max-model-len 4096"/);
  // the delete of every step is unchanged: no `~ delete:` line
  expect(out).not.toMatch(/^\s*~\s*delete\s*:/m);
});

test("5. destroy with the new program cleans the host", async () => {
  await stack.destroy();
  expect((await sshRun(sb, "systemctl cat vllm.service")).code).not.toBe(0);
  expect((await sshRun(sb, "test -e /opt/pulumi-vllm")).code).not.toBe(0);
  expect((await sshRun(sb, "id vllm")).code).not.toBe(0);
});
