// Host tier: components/host/scripts/launch-unit.sh with a renderUnit() unit
// on a real systemd (Debian bookworm sandbox) over SSH. The unit runs the
// vllm-standin (test/standin: a stand-in for vLLM, which cannot run here),
// which records its argv and environment, so the test proves that flags and
// env reach the process and that secrets reach it only through the env file.
import * as net from "net";
import { renderUnit } from "../../components/host/render-unit";
import {
  bootSandbox, diffSnapshots, fileTimer, freePort, hostSnapshot, runStep, Sandbox, shutdownSandbox, sshOk, sshRun,
} from "./sandbox";
import {
  envFilePath, expectStep, installStandin, launch, launchEnv, mainPid, readRecord, setupVenv, standinArgv,
  StandinUnitOpts, standinUnitSpec, trustMachineCAs,
} from "../standin/fixtures";

jest.setTimeout(600_000);
const timer = fileTimer("launch-unit.test.ts");
let sb: Sandbox;
let unit: StandinUnitOpts;
const UNIT = "vllm-lu.service";
const rand = Math.random().toString(36).slice(2, 10);
// secrets with characters that need quoting in env files and shells
let secrets = { VLLM_API_KEY: `sk-pv-${rand}-$HOME "q" 'a' \\b \`x\` 100%`, HF_TOKEN: `hf_${rand}Tok` };
const NASTY = ["--chat-template", `{% if x %}"quoted" 'single' $HOME 100% \\n{% endif %}`, "--root-path", "/a b/c;d"];
const NASTY_ENV = `50% $HOME "q" 'a' \\b \ttab ;`;
const OWNED = [`/etc/systemd/system/${UNIT}`, "/etc/systemd/system/multi-user.target.wants", "/etc/pulumi-vllm", "/var/lib/pulumi-vllm"];
let before: Awaited<ReturnType<typeof hostSnapshot>>;

beforeAll(async () => {
  sb = await bootSandbox("h3-lu");
  timer.mark("boot");
  await trustMachineCAs(sb);
  await setupVenv(sb);
  await installStandin(sb, "0.11.0");
  timer.mark("venv + stand-in");
  unit = { unitName: UNIT, port: await freePort(), extraArgs: ["--max-model-len", "4096", ...NASTY], environment: { PV_TEST_NASTY: NASTY_ENV } };
  before = await hostSnapshot(sb, OWNED);
});

afterAll(async () => {
  if (sb) await shutdownSandbox(sb);
  timer.done();
});

async function secretLeaks(): Promise<string[]> {
  const found: string[] = [];
  const pid = await mainPid(sb, UNIT);
  const places: Record<string, string> = {
    cmdline: await sshOk(sb, `tr '\\0' ' ' </proc/${pid}/cmdline`),
    "unit file": await sshOk(sb, `cat /etc/systemd/system/${UNIT}`),
    "systemctl show": await sshOk(sb, `systemctl show ${UNIT}`),
    journal: await sshOk(sb, "journalctl --no-pager -o verbose"),
    "ps": await sshOk(sb, "ps -eo args"),
  };
  for (const [where, text] of Object.entries(places)) {
    for (const [name, value] of Object.entries(secrets)) if (text.includes(value)) found.push(`${name} in ${where}`);
  }
  return found;
}

test("first run writes unit + 0600 env file, starts the service; flags and env reach the process", async () => {
  const r = await launch(sb, unit, secrets);
  expectStep(r, "changed");
  // the command pulumi-command runs (and puts into error messages) holds no secret
  for (const v of Object.values(secrets)) expect(r.command).not.toContain(v);
  for (const v of Object.values(secrets)) expect(r.stderr + r.stdout).not.toContain(v);
  expect((await sshOk(sb, `systemctl is-active ${UNIT}`)).trim()).toBe("active");
  expect((await sshOk(sb, `systemctl is-enabled ${UNIT}`)).trim()).toBe("enabled");
  const pid = await mainPid(sb, UNIT);
  const rec = await readRecord(sb, UNIT, pid);
  expect(rec.argv).toEqual(standinArgv(unit)); // byte for byte, through systemd's quoting
  expect(rec.env.VLLM_API_KEY).toBe(secrets.VLLM_API_KEY);
  expect(rec.env.HF_TOKEN).toBe(secrets.HF_TOKEN);
  expect(rec.env.NCCL_P2P_DISABLE).toBe("1");
  expect(rec.env.NCCL_IB_DISABLE).toBe("1");
  expect(rec.env.VLLM_WORKER_MULTIPROC_METHOD).toBe("spawn");
  expect(rec.env.PV_TEST_NASTY).toBe(NASTY_ENV); // Environment= quoting, through real systemd
  expect((await sshOk(sb, `stat -c '%a %U:%G' ${envFilePath(UNIT)} /etc/pulumi-vllm`)).trim().split("\n")).toEqual([
    "600 root:root", "700 root:root",
  ]);
  expect((await sshOk(sb, `grep -E '^OOMScoreAdjust=|^Restart=' /etc/systemd/system/${UNIT}`)).trim()).toBe("Restart=on-failure\nOOMScoreAdjust=900");
  expect((await sshOk(sb, `cat /proc/${pid}/oom_score_adj`)).trim()).toBe("900");
  timer.mark("first launch");
});

test("no secret in /proc/<pid>/cmdline, the unit file, systemctl show, ps or the journal", async () => {
  // the server logs to the journal: wait until it is up, so its log is complete
  await sshOk(sb, `for i in $(seq 100); do curl -fs -o /dev/null http://127.0.0.1:${unit.port}/health && exit 0; sleep 0.2; done; exit 1`);
  expect(await secretLeaks()).toEqual([]);
  // the API key is in force (the env file reached the server)
  expect((await sshOk(sb, `curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:${unit.port}/v1/models`)).trim()).toBe("401");
});

test("the same input again: unchanged, same PID, no file changed", async () => {
  const pid = await mainPid(sb, UNIT);
  const snap = await hostSnapshot(sb, OWNED);
  const r = await launch(sb, unit, secrets);
  expectStep(r, "unchanged");
  expect(await mainPid(sb, UNIT)).toBe(pid);
  expect(diffSnapshots(snap, await hostSnapshot(sb, OWNED))).toEqual([]);
});

test("a changed flag restarts the service (new PID) with the new flag", async () => {
  const pid = await mainPid(sb, UNIT);
  unit = { ...unit, extraArgs: ["--max-model-len", "8192", ...NASTY] };
  const r = await launch(sb, unit, secrets);
  expectStep(r, "changed");
  expect(r.stderr).toMatch(/configuration changed: restarting/);
  const pid2 = await mainPid(sb, UNIT);
  expect(pid2).not.toBe(pid);
  const rec = await readRecord(sb, UNIT, pid2);
  expect(rec.argv).toContain("8192");
  expectStep(await launch(sb, unit, secrets), "unchanged");
  expect(await mainPid(sb, UNIT)).toBe(pid2);
});

test("a changed secret rewrites the env file and restarts; nothing else changes", async () => {
  const pid = await mainPid(sb, UNIT);
  const unitSum = await sshOk(sb, `sha256sum /etc/systemd/system/${UNIT}`);
  secrets = { ...secrets, HF_TOKEN: `hf_${rand}New` };
  const r = await launch(sb, unit, secrets);
  expectStep(r, "changed");
  const pid2 = await mainPid(sb, UNIT);
  expect(pid2).not.toBe(pid);
  expect((await readRecord(sb, UNIT, pid2)).env.HF_TOKEN).toBe(secrets.HF_TOKEN);
  expect(await sshOk(sb, `sha256sum /etc/systemd/system/${UNIT}`)).toBe(unitSum);
  expect((await sshOk(sb, `stat -c '%a %U:%G' ${envFilePath(UNIT)}`)).trim()).toBe("600 root:root");
});

test("a stopped service is started again", async () => {
  await sshOk(sb, `systemctl stop ${UNIT}`);
  const r = await launch(sb, unit, secrets);
  expectStep(r, "changed");
  expect(r.stderr).toMatch(/is inactive: starting it/);
  expect((await sshOk(sb, `systemctl is-active ${UNIT}`)).trim()).toBe("active");
});

test("refuses a unit that holds a secret, misses the env file, or lacks a required secret (without printing secrets)", async () => {
  const snap = await hostSnapshot(sb, OWNED);
  const withSecret = renderUnit({ ...standinUnitSpec(unit), description: `oops ${secrets.HF_TOKEN}` });
  let r = await launch(sb, unit, secrets, { PV_UNIT_CONTENT: withSecret });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/the value of secret HF_TOKEN appears in PV_UNIT_CONTENT/);
  expect(r.stderr).not.toContain(secrets.HF_TOKEN);
  const noEnvFile = renderUnit(standinUnitSpec(unit)).replace(/^EnvironmentFile=.*\n/m, "");
  r = await launch(sb, unit, secrets, { PV_UNIT_CONTENT: noEnvFile });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/does not load PV_ENV_FILE/);
  r = await launch(sb, unit, { HF_TOKEN: secrets.HF_TOKEN });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/secret VLLM_API_KEY is required/);
  expect(diffSnapshots(snap, await hostSnapshot(sb, OWNED))).toEqual([]);
});

test("a port taken by another process on the host: clear error, nothing written", async () => {
  const port = await freePort();
  await sshOk(sb, `systemd-run --unit=pv-squatter python3 -m http.server ${port} --bind 127.0.0.1 >/dev/null 2>&1
    for i in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:${port}/ && exit 0; sleep 0.1; done; exit 1`);
  try {
    const other: StandinUnitOpts = { unitName: "vllm-other.service", port };
    const r = await launch(sb, other, secrets);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`port ${port} \\(127\\.0\\.0\\.1\\) is already in use by pid \\d+ \\(python3, cgroup /system.slice/pv-squatter.service\\), which is not vllm-other.service`));
    expect((await sshRun(sb, "test -e /etc/systemd/system/vllm-other.service")).code).not.toBe(0);
    expect((await sshRun(sb, `test -e ${envFilePath("vllm-other.service")}`)).code).not.toBe(0);
  } finally {
    await sshRun(sb, "systemctl stop pv-squatter");
  }
});

test("a port taken by a process outside the host's view: clear error", async () => {
  // The sandbox shares this machine's network: a listener here is invisible in it.
  const srv = net.createServer();
  const port: number = await new Promise((res) => srv.listen(0, "127.0.0.1", () => res((srv.address() as net.AddressInfo).port)));
  try {
    const r = await launch(sb, { unitName: "vllm-other.service", port }, secrets);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`port ${port} \\(127\\.0\\.0\\.1\\) is already in use by a process not visible from here`));
  } finally {
    srv.close();
  }
});

test("delete stops, disables and removes unit and env file; second delete unchanged; host as before", async () => {
  const env = launchEnv(unit);
  const r = await runStep(sb, { step: "launch-unit", action: "delete", env });
  expectStep(r, "changed");
  expect((await sshRun(sb, `systemctl is-active ${UNIT}`)).stdout.trim()).toBe("inactive");
  expect((await sshRun(sb, `systemctl is-enabled ${UNIT}`)).code).not.toBe(0);
  expect((await sshRun(sb, `test -e /etc/systemd/system/${UNIT}`)).code).not.toBe(0);
  expect((await sshRun(sb, `test -e ${envFilePath(UNIT)}`)).code).not.toBe(0);
  expectStep(await runStep(sb, { step: "launch-unit", action: "delete", env }), "unchanged");
  expect(diffSnapshots(before, await hostSnapshot(sb, OWNED), { ignoreDirMtime: true })).toEqual([]);
  // nothing listens on the port any more
  expect((await sshRun(sb, `curl -fs -o /dev/null http://127.0.0.1:${unit.port}/health`)).code).not.toBe(0);
});
