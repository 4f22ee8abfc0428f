// Failures through the real engine and the UPSTREAM command provider: a
// failed create is not recorded (destroy never runs its delete), a failed
// update keeps the old inputs (a reverted config is a no-op). Whatever the
// provider records, the host must end up as the state says. Each scenario
// drives `pulumi up`/`destroy`, then inspects the host over SSH.
// vLLM is the stand-in (test/standin): no GPU here.
import { EngineEvent, Stack } from "@pulumi/pulumi/automation";
import { bootSandbox, diffSnapshots, freePort, hostSnapshot, REPO_ROOT, Sandbox, shutdownSandbox, sshOk, sshRun, Snapshot } from "../host/sandbox";
import { NEWEST_RECORD, putStandinWheels, trustMachineCAs } from "../standin/fixtures";
import { openStack, removeStack, stackConfigFor } from "./engine";

jest.setTimeout(30 * 60 * 1000);

const UNIT = "/etc/systemd/system/vllm.service";
const ENV_FILE = "/etc/pulumi-vllm/vllm.env";
const DROPIN = "/etc/systemd/system/vllm.service.d/pv-test-fault.conf";
const OWNED = [UNIT, "/etc/pulumi-vllm", "/opt/pulumi-vllm", "/var/lib/pulumi-vllm", "/etc/default/earlyoom", "/etc/fstab"];

let sb: Sandbox;
let stack: Stack;
let port: number;
let before: Snapshot;
let dpkgBefore: string;
const log: string[] = [];

async function up(opts: { timeoutMs?: number } = {}): Promise<Record<string, number>> {
  const r = await stack.up({
    onOutput: (o) => log.push(o),
    // a hung `pulumi up` (an output line upstream cannot read) fails the test instead of hanging it
    signal: AbortSignal.timeout(opts.timeoutMs ?? 10 * 60 * 1000),
  });
  return r.summary.resourceChanges as Record<string, number>;
}
async function preview(): Promise<EngineEvent[]> {
  const events: EngineEvent[] = [];
  await stack.preview({ onEvent: (e) => events.push(e) });
  return events;
}
const changed = (s: Record<string, number>) => Object.keys(s).filter((k) => k !== "same");
async function setConfig(patch: (c: Record<string, any>) => void) {
  stack = await openStack(stack.name, stackConfigFor(sb, port, patch, { relativeTo: REPO_ROOT }));
}
async function sha(path: string): Promise<string> {
  return (await sshOk(sb, `sha256sum ${path} | cut -c1-64`)).trim();
}
async function record(): Promise<{ argv: string[]; pid: number }> {
  return JSON.parse(await sshOk(sb, NEWEST_RECORD));
}
/** A systemd drop-in that makes vllm.service fail to start when its unit file matches `re`. */
async function faultWhenUnitHas(re: string) {
  await sshOk(sb, `mkdir -p ${DROPIN.replace(/\/[^/]+$/, "")} && printf '%s\\n' '[Service]' "ExecStartPre=/bin/sh -c '! grep -qE -- \\"${re}\\" ${UNIT}'" > ${DROPIN} && systemctl daemon-reload`);
}
async function noFault() {
  await sshOk(sb, `rm -rf ${DROPIN.replace(/\/[^/]+$/, "")} && systemctl daemon-reload`);
}
const lastLog = (n = 80) => log.slice(-n).join("");

beforeAll(async () => {
  sb = await bootSandbox("e2e-fail");
  port = await freePort();
  await trustMachineCAs(sb);
  putStandinWheels(sb, ["0.11.0"]);
  before = await hostSnapshot(sb, OWNED);
  dpkgBefore = await sshOk(sb, "dpkg-query -W -f '${Package}\\n' | sort");
  stack = await openStack(`e2e-fail-${process.pid}`, stackConfigFor(sb, port, undefined, { relativeTo: REPO_ROOT }));
});

afterAll(async () => {
  if (stack) await stack.destroy().catch(() => undefined);
  if (stack) await removeStack(stack).catch(() => undefined);
  if (sb) await shutdownSandbox(sb);
});

test("1. a launch unit whose create fails after writing the unit and the env file leaves neither; destroy then leaves the host as it was", async () => {
  await faultWhenUnitHas("ExecStart=");
  await expect(up()).rejects.toThrow(/launch-unit/);
  expect(lastLog()).toMatch(/rolled back/);
  for (const p of [UNIT, ENV_FILE, "/var/lib/pulumi-vllm/launch-unit", "/var/lib/pulumi-vllm/txn"]) {
    expect({ p, exists: (await sshRun(sb, `test -e ${p}`)).code === 0 }).toEqual({ p, exists: false });
  }
  // the failed create is not in the state: destroy runs only the deletes of the steps that were recorded
  await stack.destroy({ onOutput: (o) => log.push(o) });
  const diff = diffSnapshots(before, await hostSnapshot(sb, OWNED), { ignoreDirMtime: true }).filter((d) => !/^~ \/etc\/fstab mtime:/.test(d));
  expect(diff).toEqual([]);
  expect(await sshOk(sb, "dpkg-query -W -f '${Package}\\n' | sort")).toBe(dpkgBefore);
  await noFault();
});

let unitSha: string;
let envSha: string;
let converged: Snapshot;
test("2. from there, up converges", async () => {
  await up();
  unitSha = await sha(UNIT);
  envSha = await sha(ENV_FILE);
  converged = await hostSnapshot(sb, [UNIT, ENV_FILE]);
  expect((await sshOk(sb, "systemctl is-active vllm.service")).trim()).toBe("active");
});

test("3. a failed update of the launch unit puts the previous unit back and running; the reverted config is a no-op that is really one", async () => {
  const oldPid = (await record()).pid;
  await faultWhenUnitHas("max-model-len[^0-9]+4096");
  await setConfig((c) => {
    c.serving = { ...c.serving, maxModelLen: 4096 };
  });
  await expect(up()).rejects.toThrow(/launch-unit/);
  expect(lastLog()).toMatch(/rollback: restarting the previous vllm\.service/);
  // upstream kept the old inputs: the host holds the old unit again, byte for byte, and serves from it
  expect(await sha(UNIT)).toBe(unitSha);
  expect(await sha(ENV_FILE)).toBe(envSha);
  expect((await sshOk(sb, "systemctl is-active vllm.service")).trim()).toBe("active");
  const r = await record();
  expect(r.pid).not.toBe(oldPid);
  expect(r.argv.join(" ")).not.toContain("--max-model-len 4096");
  await setConfig(() => {});
  // no step runs again: the server components re-record the reverted setting (an update that runs nothing)
  const steps = (await preview()).map((e) => e.resourcePreEvent?.metadata).filter((m) => m && m.type === "command:remote:Command" && m.op !== "same");
  expect(steps).toEqual([]);
  expect(changed(await up())).toEqual(["update"]);
  expect(diffSnapshots(converged, await hostSnapshot(sb, [UNIT, ENV_FILE]))).toEqual([]);
  await noFault();
});

test("4. a serving change vLLM rejects fails the readiness gate; reverting the config brings the previous unit back, byte for byte", async () => {
  await setConfig((c) => {
    c.serving = { ...c.serving, extraArgs: ["--standin-no-such-flag"] };
  });
  await expect(up()).rejects.toThrow(/readiness/);
  expect(lastLog()).toMatch(/unrecognized arguments: --standin-no-such-flag/);
  await setConfig(() => {});
  await up();
  expect(await sha(UNIT)).toBe(unitSha);
  expect((await sshOk(sb, "systemctl is-active vllm.service")).trim()).toBe("active");
  expect(changed(await up())).toEqual([]);
});

test("5. a step that prints a 100,000-character line: up finishes (upstream stops reading at 64 KiB), the line arrives cut", async () => {
  // journald splits lines at 48 KiB by default; this host keeps them whole, so the gate relays one
  await sshOk(sb, "mkdir -p /etc/systemd/journald.conf.d && printf '[Journal]\\nLineMax=1M\\n' > /etc/systemd/journald.conf.d/pv-test.conf && systemctl restart systemd-journald");
  await setConfig((c) => {
    // a slow start, so that the readiness gate relays the server's log while it waits
    c.host = { ...c.host, env: { VLLM_STANDIN_LONG_LINE: "100000", VLLM_STANDIN_START_DELAY: "12" } };
  });
  const from = log.length;
  await up({ timeoutMs: 5 * 60 * 1000 });
  expect(log.slice(from).join("")).toMatch(/Loading weights: w{1000,} \[line cut at 4000 characters\]/);
  await setConfig(() => {});
  await up();
});

test("6. a host frozen mid-step (every process stopped) ends the step with an error once it runs again; the next up converges", async () => {
  await setConfig((c) => {
    c.serving = { ...c.serving, maxModelLen: 2048 };
    // a server that cannot be ready within the gate's 30 s, frozen or not: the gate must fail
    c.host = { ...c.host, readinessTimeoutMinutes: 0.5, env: { VLLM_STANDIN_START_DELAY: "120" } };
  });
  const freezer = (async () => {
    await new Promise((r) => setTimeout(r, 8000));
    const pids = await freezeSandbox(sb, "STOP");
    await new Promise((r) => setTimeout(r, 45000));
    await freezeSandbox(sb, "CONT", pids);
  })();
  const start = Date.now();
  await expect(up()).rejects.toThrow(/readiness/);
  await freezer;
  // bounded: the freeze plus the gate's own limits, not for ever
  expect(Date.now() - start).toBeLessThan(4 * 60 * 1000);
  await setConfig((c) => {
    c.serving = { ...c.serving, maxModelLen: 2048 };
  });
  await up();
  expect((await record()).argv.join(" ")).toContain("--max-model-len 2048");
  expect(changed(await up())).toEqual([]);
});

/** SIGSTOP (or SIGCONT) every process of the sandbox's PID namespace, from this machine. */
async function freezeSandbox(s: Sandbox, sig: "STOP" | "CONT", pids?: number[]): Promise<number[]> {
  const { execFileSync } = await import("child_process");
  const fs = await import("fs");
  if (!pids) {
    const init = Number(execFileSync("pgrep", ["-P", String(s.pid)], { encoding: "utf8" }).trim().split("\n")[0]);
    const ns = fs.readlinkSync(`/proc/${init}/ns/pid`);
    pids = fs
      .readdirSync("/proc")
      .filter((d) => /^\d+$/.test(d))
      .map(Number)
      .filter((p) => {
        try {
          return fs.readlinkSync(`/proc/${p}/ns/pid`) === ns;
        } catch {
          return false;
        }
      });
  }
  for (const p of pids) {
    try {
      process.kill(p, `SIG${sig}`);
    } catch {
      /* gone */
    }
  }
  return pids;
}
