// The real engine end to end on a real host: `pulumi preview`, `up`, a no-op
// `up`, targeted changes, secrets in state and logs, a dropped connection,
// and `destroy`, against a fresh sandbox (Debian + systemd + sshd over SSH).
// vLLM is the stand-in (test/standin): no GPU here.
import { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { bootSandbox, diffSnapshots, freePort, hostSnapshot, Sandbox, shutdownSandbox, sshOk, sshRun, Snapshot } from "../host/sandbox";
import { NEWEST_RECORD, putStandinWheels, trustMachineCAs } from "../standin/fixtures";
import { execFileSync } from "child_process";
import { REPO_ROOT } from "../host/sandbox";
import { changesOf, ensureEngine, openStack, pathsHolding, removeStack, stackConfigFor } from "./engine";

jest.setTimeout(30 * 60 * 1000);

const HF_TOKEN = "hf_e2eSecretToken0123456789abcdef";
// Everything the steps may touch, for before/after comparisons.
const SWAP = "/swapfile-e2e"; // stackConfigFor: /swapfile-<sandbox name>
const OWNED = ["/etc/fstab", "/etc/default/earlyoom", "/etc/systemd/system/vllm.service", "/etc/pulumi-vllm", "/opt/pulumi-vllm", "/var/lib/pulumi-vllm", SWAP];
const INSTALL_PATHS = ["/opt/pulumi-vllm", SWAP, "/etc/default/earlyoom", "/etc/fstab"];

let sb: Sandbox;
let stack: Stack;
let port: number;
let before: Snapshot;
let dpkgBefore: string;
const log: string[] = [];

async function up(): Promise<{ events: EngineEvent[]; summary: Record<string, number> }> {
  const events: EngineEvent[] = [];
  const r = await stack.up({ onEvent: (e) => events.push(e), onOutput: (o) => log.push(o) });
  return { events, summary: r.summary.resourceChanges as Record<string, number> };
}
async function preview(): Promise<EngineEvent[]> {
  const events: EngineEvent[] = [];
  await stack.preview({ onEvent: (e) => events.push(e), onOutput: (o) => log.push(o) });
  return events;
}
async function record(): Promise<{ argv: string[]; pid: number; version: string; env: Record<string, string>; identity: { user: string } }> {
  return JSON.parse(await sshOk(sb, NEWEST_RECORD));
}
/** The commands among a preview's changes, by name. */
function commandsIn(changes: string[]): string[] {
  return changes.filter((x) => x.includes("command:remote:Command")).map((x) => x.split("::").pop()!).sort();
}
async function setConfig(patch: (c: Record<string, any>) => void) {
  stack = await openStack(stack.name, stackConfigFor(sb, port, patch, { relativeTo: REPO_ROOT }));
}

beforeAll(async () => {
  sb = await bootSandbox("e2e");
  port = await freePort();
  await trustMachineCAs(sb);
  putStandinWheels(sb, ["0.11.0", "0.11.1"]);
  before = await hostSnapshot(sb, OWNED);
  dpkgBefore = await sshOk(sb, "dpkg-query -W -f '${Package}\\n' | sort");
  stack = await openStack(`e2e-${process.pid}`, stackConfigFor(sb, port, undefined, { relativeTo: REPO_ROOT }));
  await stack.setConfig("hfToken", { value: HF_TOKEN, secret: true });
});

afterAll(async () => {
  if (stack) await removeStack(stack).catch(() => undefined);
  if (sb) await shutdownSandbox(sb);
});

test("1. preview of a config that does not fit fails before any host is touched, with the planner's message", async () => {
  await setConfig((c) => {
    c.hardware = { ...c.hardware, gpuMemoryGiB: 8 };
  });
  try {
    await expect(preview()).rejects.toThrow(/do not fit in 7\.09 GiB .* -> /);
    const after = await hostSnapshot(sb, OWNED);
    expect(diffSnapshots(before, after)).toEqual([]);
  } finally {
    await setConfig(() => {});
  }
});

test("1b. preview of a new stack lists every step", async () => {
  const changes = changesOf(await preview());
  // each command is named after its step component, under the server "vllm"
  for (const name of ["vllm-toolchain", "vllm-swapfile", "vllm-earlyoom", "vllm-uv-venv", "vllm-vllm-install", "vllm-launch-unit", "vllm-launch-readiness"]) {
    expect(changes).toContainEqual(expect.stringMatching(new RegExp(`^create .*command:remote:Command::${name}$`)));
  }
  expect(diffSnapshots(before, await hostSnapshot(sb, OWNED))).toEqual([]);
});

test("2. up converges every step, the readiness gate passes, outputs are set", async () => {
  const { summary } = await up();
  expect(summary.create).toBeGreaterThanOrEqual(16);
  const out = await stack.outputs();
  expect(out.endpoint.value).toBe(`http://127.0.0.1:${port}/v1`);
  expect(out.servedModelName.value).toBe("Qwen/Qwen2.5-7B-Instruct");
  expect(out.unitName.value).toBe("vllm.service");
  expect(out.apiKey.secret).toBe(true);
  const res = await fetch(`${out.endpoint.value}/models`, { headers: { Authorization: `Bearer ${out.apiKey.value}` } });
  expect(res.status).toBe(200);
  expect((await fetch(`${out.endpoint.value}/models`)).status).toBe(401);
  expect((await sshOk(sb, "systemctl is-active vllm.service")).trim()).toBe("active");
  expect(await sshOk(sb, "grep -c ' swap ' /etc/fstab")).toBe("1\n");
});

let converged: Snapshot;
test("3. a second up changes nothing, on the stack and on the host", async () => {
  converged = await hostSnapshot(sb, OWNED);
  const pid = (await record()).pid;
  const { summary } = await up();
  expect(Object.keys(summary).filter((k) => k !== "same")).toEqual([]);
  expect(diffSnapshots(converged, await hostSnapshot(sb, OWNED))).toEqual([]);
  expect((await record()).pid).toBe(pid);
});

test("4. max-model-len: preview shows only the launch unit (and its gate); up restarts with the new flag", async () => {
  const installed = await hostSnapshot(sb, INSTALL_PATHS);
  const pid = (await record()).pid;
  await setConfig((c) => {
    c.serving = { ...c.serving, maxModelLen: 4096 };
  });
  const changes = changesOf(await preview());
  expect(commandsIn(changes)).toEqual(["vllm-launch-readiness", "vllm-launch-unit"]);
  expect(changes).toContainEqual(expect.stringMatching(/^update .*::vllm-launch-unit$/));
  // the server and its launch unit record the setting (nothing runs for a component)
  expect(changes.filter((x) => !x.includes("command:remote:Command")).map((x) => `${x.split(" ")[0]} ${x.split("::").pop()}`).sort()).toEqual(["update vllm", "update vllm-launch"]);
  await up();
  const r = await record();
  expect(r.pid).not.toBe(pid);
  expect(r.argv.join(" ")).toContain("--max-model-len 4096");
  expect(diffSnapshots(installed, await hostSnapshot(sb, INSTALL_PATHS))).toEqual([]);
});

test("5. a vLLM version change re-runs the install and the unit only", async () => {
  await setConfig((c) => {
    c.serving = { ...c.serving, maxModelLen: 4096 };
    c.vllm = { ...c.vllm, version: "0.11.1" };
  });
  const changes = changesOf(await preview());
  expect(commandsIn(changes)).toEqual(["vllm-launch-readiness", "vllm-launch-unit", "vllm-vllm-install"]);
  await up();
  expect((await record()).version).toBe("0.11.1");
});

test("6. stack export and the logs hold no API key or HF token in clear text", async () => {
  const key = (await stack.outputs()).apiKey.value as string;
  // the CLI's export, without --show-secrets (the Automation API's exportStack decrypts)
  const exported = JSON.parse(execFileSync("pulumi", ["stack", "export", "--stack", stack.name], { cwd: REPO_ROOT, env: { ...process.env, ...ensureEngine() }, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 }));
  // where a secret shows in clear text (an empty list is the pass)
  expect(pathsHolding(exported, key)).toEqual([]);
  expect(pathsHolding(exported, HF_TOKEN)).toEqual([]);
  const all = log.join("");
  expect(all).not.toContain(key);
  expect(all).not.toContain(HF_TOKEN);
  const journal = await sshOk(sb, "journalctl --no-pager -o cat");
  expect(journal).not.toContain(key);
  expect(journal).not.toContain(HF_TOKEN);
  const cmdline = await sshOk(sb, `tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value vllm.service)/cmdline`);
  expect(cmdline).not.toContain(key);
  expect(await sshOk(sb, "stat -c '%a %U' /etc/pulumi-vllm/vllm.env")).toBe("600 root\n");
  // the server itself is not root
  expect((await record()).identity.user).toBe("vllm");
});

test("8. a connection dropped mid-step fails up with a clear error; the next up converges", async () => {
  await setConfig((c) => {
    c.serving = { ...c.serving, maxModelLen: 2048 };
    c.host = { ...c.host, env: { VLLM_STANDIN_START_DELAY: "25" } };
  });
  // While the readiness gate waits for the slow stand-in, kill every sshd: the session drops.
  const killer = (async () => {
    await new Promise((r) => setTimeout(r, 12000));
    await sshRun(sb, "systemd-run --unit pv-e2e-sshd-drop --on-active=1 sh -c 'systemctl stop ssh.service ssh.socket; pkill -KILL sshd; sleep 20; systemctl start ssh.service'");
  })();
  await expect(up()).rejects.toThrow(/.+/);
  await killer;
  const lastErr = log.slice(-40).join("");
  expect(lastErr).toMatch(/ssh|connection|EOF|dial|reset|handshake|closed/i);
  await new Promise((r) => setTimeout(r, 25000));
  await up();
  const r = await record();
  expect(r.argv.join(" ")).toContain("--max-model-len 2048");
  const { summary } = await up();
  expect(Object.keys(summary).filter((k) => k !== "same")).toEqual([]);
});

test("9. renaming unitName and venvPath replaces the launch step: the old unit and venv link are removed first, the new ones serve on the same port from the same release's venv", async () => {
  await setConfig((c) => {
    c.serving = { ...c.serving, maxModelLen: 2048 };
    c.host = { ...c.host, env: { VLLM_STANDIN_START_DELAY: "25" }, unitName: "vllm-renamed.service", venvPath: "/opt/pulumi-vllm/venv-renamed" };
  });
  const renamed = changesOf(await preview());
  // deleteBeforeReplace: the old unit's delete frees the port before the new one starts
  expect(renamed).toContainEqual(expect.stringMatching(/^replace .*::vllm-launch-unit$/));
  // venvPath is the link to the release's versioned venv: renaming it reinstalls nothing
  for (const step of ["vllm-uv-venv", "vllm-vllm-install"]) expect(renamed).not.toContainEqual(expect.stringMatching(new RegExp(`^replace .*::${step}$`)));
  await up();
  expect((await sshRun(sb, "systemctl cat vllm.service")).code).not.toBe(0);
  expect((await sshRun(sb, "test -e /etc/pulumi-vllm/vllm.env")).code).not.toBe(0);
  expect((await sshRun(sb, "test -e /opt/pulumi-vllm/venv")).code).not.toBe(0);
  expect((await sshRun(sb, "test -e /var/lib/pulumi-vllm/home/vllm")).code).not.toBe(0);
  expect((await sshOk(sb, "systemctl is-active vllm-renamed.service")).trim()).toBe("active");
  const r = await record();
  expect(r.argv[0]).toBe("/opt/pulumi-vllm/venv-renamed/bin/vllm");
  expect((await sshOk(sb, "readlink /opt/pulumi-vllm/venv-renamed")).trim()).toMatch(/^\/opt\/pulumi-vllm\/venvs\/[^/]+-py[\d.]+$/);
  expect(r.identity.user).toBe("vllm");
  // only the new unit's state is left: none for the old name
  expect((await sshOk(sb, "ls /var/lib/pulumi-vllm/launch-unit")).trim().split("\n").filter((f) => f.endsWith(".state"))).toEqual(["vllm-renamed.service.state"]);
  const { summary } = await up();
  expect(Object.keys(summary).filter((k) => k !== "same")).toEqual([]);
});

test("7. destroy leaves the host as it was: no unit, no swapfile, no fstab line, EarlyOOM config restored, no packages", async () => {
  await stack.destroy({ onOutput: (o) => log.push(o) });
  // /etc/fstab got its line back out: same bytes, a new mtime
  const diff = diffSnapshots(before, await hostSnapshot(sb, OWNED), { ignoreDirMtime: true }).filter((d) => !/^~ \/etc\/fstab mtime:/.test(d));
  expect(diff).toEqual([]);
  expect(await sshOk(sb, "dpkg-query -W -f '${Package}\\n' | sort")).toBe(dpkgBefore);
  expect((await sshRun(sb, "systemctl cat vllm.service")).code).not.toBe(0);
  expect((await sshRun(sb, "systemctl cat vllm-renamed.service")).code).not.toBe(0);
  expect((await sshRun(sb, "id vllm")).code).not.toBe(0);
  // /proc/swaps is the kernel's, shared with every sandbox on this machine: other sandboxes' swap files show
  // there too (`/swapfile-<their name>`); this stack's, and only it, must be gone.
  expect((await sshOk(sb, "swapon --show=NAME --noheadings")).split("\n")).not.toContain(SWAP);
});
