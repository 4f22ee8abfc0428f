// vLLM upgrades through the real engine and the UPSTREAM command provider:
// each release installs into a venv of its own while the old server serves,
// the launch step switches the unit to it, and a release that does not serve
// is rolled back to the previous one, with `pulumi up` failing with its error.
// The state must stay true (a failed update keeps the old inputs): the next
// `up` retries, a reverted config restarts nothing. vLLM is the stand-in
// (test/standin) at four versions; 0.12.0 is built to refuse to start.
import { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { bootSandbox, freePort, REPO_ROOT, Sandbox, shutdownSandbox, sshOk, sshRun } from "../host/sandbox";
import { putStandinWheels, trustMachineCAs } from "../standin/fixtures";
import { changesOf, openStack, removeStack, stackConfigFor } from "./engine";

jest.setTimeout(40 * 60 * 1000);

const VENVS = "/opt/pulumi-vllm/venvs";
const LINK = "/opt/pulumi-vllm/venv";
let sb: Sandbox;
let stack: Stack;
let port: number;
const log: string[] = [];

async function setVersion(version: string) {
  stack = await openStack(stack.name, stackConfigFor(sb, port, (c) => (c.vllm = { ...c.vllm, version }), { relativeTo: REPO_ROOT }));
}
async function up(onEvent?: (e: EngineEvent) => void): Promise<Record<string, number>> {
  const r = await stack.up({ onOutput: (o) => log.push(o), onEvent, signal: AbortSignal.timeout(10 * 60 * 1000) });
  return r.summary.resourceChanges as Record<string, number>;
}
const lastLog = (n = 120) => log.slice(-n).join("");
const venvs = async () => (await sshOk(sb, `ls -1 ${VENVS}`)).split("\n").filter(Boolean).sort();
const linkTarget = async () => (await sshOk(sb, `readlink ${LINK}`)).trim();
const pid = async () => Number((await sshOk(sb, "systemctl show -p MainPID --value vllm.service")).trim());
/** The version the server says it is (GET /version; the sandbox shares this machine's network), "none" when it does not answer. */
async function serving(): Promise<string> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/version`, { signal: AbortSignal.timeout(1000) });
    return r.ok ? ((await r.json()) as { version: string }).version : "none";
  } catch {
    return "none";
  }
}
/** Command steps the engine ran, as "op name" (preview or up events). */
const commandOps = (events: EngineEvent[]) =>
  changesOf(events)
    .filter((o) => o.includes("command:remote:Command"))
    .map((o) => `${o.split(" ")[0]} ${o.split("::").pop()}`);

beforeAll(async () => {
  sb = await bootSandbox("e2e-upgrade-vv");
  port = await freePort();
  await trustMachineCAs(sb);
  putStandinWheels(sb, ["0.11.0", "0.13.0", "0.14.0"]);
  putStandinWheels(sb, ["0.12.0"], { crash: true });
  stack = await openStack(`e2e-upgrades-${process.pid}`, stackConfigFor(sb, port, (c) => (c.vllm = { ...c.vllm, version: "0.11.0" }), { relativeTo: REPO_ROOT }));
});

afterAll(async () => {
  if (stack) await stack.destroy().catch(() => undefined);
  if (stack) await removeStack(stack).catch(() => undefined);
  if (sb) await shutdownSandbox(sb);
});

test("1. the first up installs 0.11.0 into its own venv; venvPath links to it", async () => {
  await up();
  expect(await venvs()).toEqual(["0.11.0-py3.11"]);
  expect(await linkTarget()).toBe(`${VENVS}/0.11.0-py3.11`);
  expect(await serving()).toBe("0.11.0");
});

let pid0: number;
test("2. an upgrade to a release that does not start fails `up` with its error, and the old release serves again", async () => {
  pid0 = await pid();
  await setVersion("0.12.0");
  await expect(up()).rejects.toThrow(/launch-unit/);
  expect(lastLog()).toMatch(/RuntimeError: vllm-standin 0\.12\.0: simulated crash/);
  expect(lastLog()).toMatch(/rolled back to 0\.11\.0-py3\.11 \(\/opt\/pulumi-vllm\/venvs\/0\.11\.0-py3\.11\): it answers \/health again/);
  expect(await serving()).toBe("0.11.0");
  expect(await linkTarget()).toBe(`${VENVS}/0.11.0-py3.11`);
  expect(await venvs()).toEqual(["0.11.0-py3.11", "0.12.0-py3.11"]);
});

test("3. the state kept the old launch: the next up would try the upgrade again", async () => {
  const events: EngineEvent[] = [];
  await stack.preview({ onEvent: (e) => events.push(e) });
  const ops = commandOps(events);
  expect(ops).toContain("update vllm-launch-unit");
  // the install succeeded and is recorded: it does not run again
  expect(ops.filter((o) => o.endsWith("vllm-install"))).toEqual([]);
});

test("4. the reverted config restarts nothing and re-runs neither the unit nor the gate", async () => {
  await setVersion("0.11.0");
  const pidBefore = await pid();
  const events: EngineEvent[] = [];
  const changes = await up((e) => events.push(e));
  expect(changes.replace ?? 0).toBe(0);
  // the install step's recorded inputs were 0.12.0's: it runs, finds 0.11.0's venv verified, changes nothing
  expect(commandOps(events)).toEqual(["update vllm-vllm-install"]);
  expect(await pid()).toBe(pidBefore);
  expect(await serving()).toBe("0.11.0");
});

test("5. an upgrade to a good release: the old server answers until the switch; the downtime is the restart only", async () => {
  await setVersion("0.13.0");
  const samples: { t: number; v: string }[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      samples.push({ t: Date.now(), v: await serving() });
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  const stepStart: Record<string, number> = {};
  await up((e) => {
    const m = e.resourcePreEvent?.metadata;
    if (m && m.type === "command:remote:Command") stepStart[m.urn.split("::").pop()!] = Date.now();
  }).finally(async () => {
    polling = false;
    await poller;
  });
  // 0.11.0 until the launch step switched, then 0.13.0: never back, one gap
  const seq = samples.map((s) => s.v).filter((v, i, a) => i === 0 || v !== a[i - 1]);
  expect(seq[0]).toBe("0.11.0");
  expect(seq[seq.length - 1]).toBe("0.13.0");
  expect(seq.filter((v) => v === "0.13.0")).toHaveLength(1);
  expect(seq.filter((v) => v === "0.11.0")).toHaveLength(1);
  const last011 = samples.filter((s) => s.v === "0.11.0").pop()!.t;
  expect(last011).toBeGreaterThan(stepStart["vllm-launch-unit"]);
  const first013 = samples.find((s) => s.v === "0.13.0")!.t;
  const downtime = (first013 - last011) / 1000;
  // stop + start of the stand-in (TimeoutStopSec is 120 for a hung vLLM; the stand-in stops at once)
  expect(downtime).toBeLessThan(20);
  expect(await venvs()).toEqual(["0.11.0-py3.11", "0.12.0-py3.11", "0.13.0-py3.11"]);
  expect(await linkTarget()).toBe(`${VENVS}/0.13.0-py3.11`);
});

test("6. the next release removes the venvs beyond the last two (keepVenvs); a no-op up changes nothing", async () => {
  await setVersion("0.14.0");
  await up();
  expect(await serving()).toBe("0.14.0");
  expect(await venvs()).toEqual(["0.13.0-py3.11", "0.14.0-py3.11"]);
  const again = await up();
  expect(Object.keys(again).filter((k) => k !== "same")).toEqual([]);
});

test("7. destroy removes every venv, the link and uv", async () => {
  await stack.destroy({ onOutput: (o) => log.push(o) });
  expect((await sshRun(sb, "test -e /opt/pulumi-vllm")).code).not.toBe(0);
  expect((await sshRun(sb, "systemctl cat vllm.service")).code).not.toBe(0);
});
