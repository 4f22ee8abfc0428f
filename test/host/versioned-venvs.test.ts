// Host tier: versioned venvs and the rollback of a vLLM upgrade, on a real
// Debian bookworm with systemd over SSH. vllm-install.sh makes one venv per
// release (the vllm-standin wheel at several versions, one built to refuse to
// start), launch-unit.sh points the unit's venv link at it and rolls the
// switch back when the new server does not serve.
import { freePort, bootSandbox, fileTimer, hostSnapshot, diffSnapshots, runStep, Sandbox, shutdownSandbox, sshOk, sshRun } from "./sandbox";
import { renderStdin } from "../../components/host/remote-command";
import { expectStep, launchEnv, mainPid, putStandinWheels, standinInstallEnv, trustMachineCAs, UV_BIN, UV_VERSION, VENV } from "../standin/fixtures";

jest.setTimeout(600_000);
const timer = fileTimer("versioned-venvs.test.ts");
let sb: Sandbox;
let port: number;

const VENVS = "/opt/pulumi-vllm/venvs";
const LINK = VENV; // the unit runs <LINK>/bin/vllm (standinArgv)
const venvOf = (v: string) => `${VENVS}/${v}-py3.11`;
const UNIT = "pv-vv.service";
const unit = () => ({ unitName: UNIT, port });
const secrets = { VLLM_API_KEY: "vv-test-key-0123456789" };

const installEnv = (version: string, over: Record<string, string> = {}) => ({
  ...standinInstallEnv(version),
  PV_VENVS_DIR: VENVS,
  PV_VENV_PATH: venvOf(version),
  PV_PYTHON: "3.11",
  PV_KEEP_VENVS: "2",
  PV_ACTIVE_LINK: LINK,
  ...over,
});
const install = (version: string, over: Record<string, string> = {}) => runStep(sb, { step: "vllm-install", action: "create", env: installEnv(version, over) });
const switchEnv = (version: string, link = LINK) => ({
  PV_VENV_LINK: link,
  PV_VENV_TARGET: venvOf(version),
  PV_HEALTH_URL: `http://127.0.0.1:${port}`,
  PV_SERVED_MODEL: "qwen-test",
  PV_SWITCH_TIMEOUT: "60",
});
const launchOn = (version: string, o = unit(), link = LINK) =>
  runStep(sb, { step: "launch-unit", action: "create", env: launchEnv(o, switchEnv(version, link)), stdin: renderStdin(secrets) });
const venvs = async () => (await sshOk(sb, `ls -1 ${VENVS}`)).split("\n").filter(Boolean).sort();
const linkTarget = async (link = LINK) => (await sshOk(sb, `readlink ${link}`)).trim();
/** The version the server on `p` says it is (GET /version), or "none" when nothing answers. */
async function serving(p = port): Promise<string> {
  const r = await sshRun(sb, `curl -s -m 5 http://127.0.0.1:${p}/version`);
  if (r.code !== 0 || !r.stdout) return "none";
  return JSON.parse(r.stdout).version;
}
async function waitServing(version: string, p = port): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((await serving(p)) !== version) {
    if (Date.now() > deadline) throw new Error(`the server on ${p} does not serve ${version}: ${await serving(p)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

beforeAll(async () => {
  sb = await bootSandbox("upgrade-vv");
  port = await freePort();
  timer.mark("boot");
  await trustMachineCAs(sb);
  putStandinWheels(sb, ["0.11.0", "0.13.0", "0.14.0"]);
  putStandinWheels(sb, ["0.12.0"], { crash: true });
  expectStep(await runStep(sb, { step: "uv-venv", action: "create", env: { PV_UV_VERSION: UV_VERSION, PV_UV_ONLY: "1" } }), "changed");
  timer.mark("uv");
});

afterAll(async () => {
  if (sb) await shutdownSandbox(sb);
  timer.done();
});

test("uv-venv with PV_UV_ONLY installs uv and makes no venv", async () => {
  expect((await sshRun(sb, `test -e ${VENV}`)).code).not.toBe(0);
  expect(await sshOk(sb, `${UV_BIN()} --version`)).toMatch(new RegExp(`^uv ${UV_VERSION.replace(/\./g, "\\.")}`));
});

test("a release installs into a venv of its own, verified by import and `vllm --version`; again: unchanged, nothing touched", async () => {
  const r = await install("0.11.0");
  expectStep(r, "changed");
  expect(r.stderr).toMatch(/vllm --version: 0\.11\.0 \(vllm-standin, not vLLM\)/);
  expect(await venvs()).toEqual(["0.11.0-py3.11"]);
  const paths = [VENVS, "/var/lib/pulumi-vllm/vllm-install"];
  const snap = await hostSnapshot(sb, paths);
  expectStep(await install("0.11.0"), "unchanged");
  expect(diffSnapshots(snap, await hostSnapshot(sb, paths))).toEqual([]);
});

test("a directory at the venv's path that pulumi-vllm did not make is refused, and left as it is", async () => {
  await sshOk(sb, `mkdir -p ${venvOf("0.9.0")} && touch ${venvOf("0.9.0")}/mine`);
  const r = await install("0.9.0");
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/0\.9\.0-py3\.11 exists and pulumi-vllm did not make it .* -> remove it, or set host\.venvsDir/);
  expect((await sshRun(sb, `test -f ${venvOf("0.9.0")}/mine`)).code).toBe(0);
  await sshOk(sb, `rm -rf ${venvOf("0.9.0")}`);
});

test("an install that does not verify leaves no venv and no record behind", async () => {
  // the wheel is 0.13.0: it reports another version than the one asked for
  const r = await install("0.13.1", { PV_PACKAGE: "vllm-standin==0.13.0" });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/does not verify: vllm-standin reports version '0\.13\.0', not 0\.13\.1/);
  expect(r.stderr).toMatch(/rolled back/);
  expect(await venvs()).toEqual(["0.11.0-py3.11"]);
  expect((await sshOk(sb, "ls /var/lib/pulumi-vllm/vllm-install/venvs")).trim().split("\n")).toHaveLength(1);
});

let pid0: number;
test("the first launch makes the venv link and starts the server from it", async () => {
  const r = await launchOn("0.11.0");
  expectStep(r, "changed");
  expect(await linkTarget()).toBe(venvOf("0.11.0"));
  await waitServing("0.11.0");
  pid0 = await mainPid(sb, UNIT);
});

test("installing a new release leaves the running server alone", async () => {
  expectStep(await install("0.12.0"), "changed");
  expect(await venvs()).toEqual(["0.11.0-py3.11", "0.12.0-py3.11"]);
  expect(await mainPid(sb, UNIT)).toBe(pid0);
  expect(await serving()).toBe("0.11.0");
});

test("a switch to a release that does not serve fails with its error, and rolls back to the previous venv and server", async () => {
  const unitSha = await sshOk(sb, `sha256sum /etc/systemd/system/${UNIT}`);
  const r = await launchOn("0.12.0");
  expect(r.code).not.toBe(0);
  // vLLM's own error, from the journal, with the secret redacted
  expect(r.stderr).toMatch(/RuntimeError: vllm-standin 0\.12\.0: simulated crash \(this build refuses to start/);
  expect(r.stderr).toMatch(/vLLM from \/opt\/pulumi-vllm\/venvs\/0\.12\.0-py3\.11 does not serve: the server (crashed|exited)/);
  expect(r.stderr).toMatch(/rolled back to 0\.11\.0-py3\.11 \(\/opt\/pulumi-vllm\/venvs\/0\.11\.0-py3\.11\): it answers \/health again/);
  expect(r.stderr).not.toContain(secrets.VLLM_API_KEY);
  expect(await linkTarget()).toBe(venvOf("0.11.0"));
  expect(await sshOk(sb, `sha256sum /etc/systemd/system/${UNIT}`)).toBe(unitSha);
  expect(await serving()).toBe("0.11.0");
  expect((await sshOk(sb, `systemctl is-active ${UNIT}`)).trim()).toBe("active");
  // both venvs stay: the broken one for the next attempt, the running one
  expect(await venvs()).toEqual(["0.11.0-py3.11", "0.12.0-py3.11"]);
  expect((await sshRun(sb, "ls /var/lib/pulumi-vllm/txn/launch-unit 2>/dev/null")).stdout.trim()).toBe("");
});

test("the same launch as before changes nothing: no restart", async () => {
  const pid = await mainPid(sb, UNIT);
  expectStep(await launchOn("0.11.0"), "unchanged");
  expect(await mainPid(sb, UNIT)).toBe(pid);
});

test("a good release: the old server serves until the switch, then the new one; the running venv is kept beyond keepVenvs", async () => {
  expectStep(await install("0.13.0"), "changed");
  // 0.11.0 is the oldest of three, but the server runs it: kept
  expect(await venvs()).toEqual(["0.11.0-py3.11", "0.12.0-py3.11", "0.13.0-py3.11"]);
  expect(await serving()).toBe("0.11.0");
  const r = await launchOn("0.13.0");
  expectStep(r, "changed");
  expect(r.stderr).toMatch(/vLLM from \/opt\/pulumi-vllm\/venvs\/0\.13\.0-py3\.11 answers \/health and lists 'qwen-test'/);
  expect(await linkTarget()).toBe(venvOf("0.13.0"));
  expect(await serving()).toBe("0.13.0");
});

test("the next release removes the venvs beyond the last two, only those pulumi-vllm made", async () => {
  await sshOk(sb, `mkdir -p ${VENVS}/someone-elses && touch ${VENVS}/someone-elses/keep`);
  const r = await install("0.14.0");
  expectStep(r, "changed");
  expect(r.stderr).toMatch(/removing \/opt\/pulumi-vllm\/venvs\/0\.11\.0-py3\.11/);
  expect(await venvs()).toEqual(["0.13.0-py3.11", "0.14.0-py3.11", "someone-elses"]);
  expect((await sshOk(sb, "ls /var/lib/pulumi-vllm/vllm-install/venvs")).trim().split("\n")).toHaveLength(2);
  expect(await serving()).toBe("0.13.0");
});

test("a venv an earlier release made at venvPath becomes the link once the new server answers; its records go with it", async () => {
  const legacy = "/opt/pv-legacy/venv";
  const p2 = await freePort();
  const u2 = { unitName: "pv-vv-legacy.service", port: p2 };
  // what release 0.1.0 left: uv-venv's venv at venvPath, vLLM in it, the unit running from it
  expectStep(await runStep(sb, { step: "uv-venv", action: "create", env: { PV_UV_VERSION: UV_VERSION, PV_VENV_PATH: legacy, PV_PYTHON: "3.11" } }), "changed");
  const legacyInstall = { ...standinInstallEnv("0.11.0"), PV_VENV_PATH: legacy };
  expectStep(await runStep(sb, { step: "vllm-install", action: "create", env: legacyInstall }), "changed");
  const legacyEnv = (over: Record<string, string>) => ({ ...launchEnv(u2), PV_UNIT_CONTENT: launchEnv(u2).PV_UNIT_CONTENT.split(VENV).join(legacy), ...over });
  expectStep(await runStep(sb, { step: "launch-unit", action: "create", env: legacyEnv({}), stdin: renderStdin(secrets) }), "changed");
  await waitServing("0.11.0", p2);
  // this release: the same unit, its venvPath now a link to the versioned venv
  const r = await runStep(sb, {
    step: "launch-unit",
    action: "create",
    env: legacyEnv({ ...switchEnv("0.14.0", legacy), PV_HEALTH_URL: `http://127.0.0.1:${p2}` }),
    stdin: renderStdin(secrets),
  });
  expectStep(r, "changed");
  expect(r.stderr).toMatch(/is the venv an earlier release made: it becomes a link/);
  expect(await linkTarget(legacy)).toBe(venvOf("0.14.0"));
  expect(await serving(p2)).toBe("0.14.0");
  expect((await sshOk(sb, "ls /opt/pv-legacy")).trim()).toBe("venv");
  expect((await sshOk(sb, `grep -l 'venv=${legacy}$' /var/lib/pulumi-vllm/uv-venv/*.state /var/lib/pulumi-vllm/vllm-install/*.state 2>/dev/null || true`)).trim()).toBe("");
  expectStep(await runStep(sb, { step: "launch-unit", action: "delete", env: { PV_UNIT_NAME: u2.unitName, PV_ENV_FILE: launchEnv(u2).PV_ENV_FILE } }), "changed");
  expect((await sshRun(sb, `test -L ${legacy}`)).code).not.toBe(0);
  await sshOk(sb, "rm -rf /opt/pv-legacy");
});

test("a directory at venvPath that pulumi-vllm did not make is refused before anything changes", async () => {
  const other = "/opt/pv-other/venv";
  await sshOk(sb, `mkdir -p ${other}/bin`);
  const r = await launchOn("0.14.0", unit(), other);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/\/opt\/pv-other\/venv exists and is not a venv or link pulumi-vllm made .* -> move it away, or choose another host\.venvPath/);
  expect((await sshRun(sb, `test -d ${other} && test ! -L ${other}`)).code).toBe(0);
  expect(await serving()).toBe("0.13.0");
  await sshOk(sb, "rm -rf /opt/pv-other");
});

test("delete: the install step keeps the venv the link still points at; after the unit's delete (link gone) it removes every venv it made", async () => {
  const del = () => runStep(sb, { step: "vllm-install", action: "delete", env: installEnv("0.14.0") });
  let r = await del();
  expect(r.code).toBe(0);
  expect(r.stderr).toMatch(/keeping \/opt\/pulumi-vllm\/venvs\/0\.13\.0-py3\.11: .* still points at it/);
  expect(await venvs()).toEqual(["0.13.0-py3.11", "someone-elses"]);
  expectStep(await runStep(sb, { step: "launch-unit", action: "delete", env: { PV_UNIT_NAME: UNIT, PV_ENV_FILE: launchEnv(unit()).PV_ENV_FILE } }), "changed");
  expect((await sshRun(sb, `test -e ${LINK} || test -L ${LINK}`)).code).not.toBe(0);
  r = await del();
  expectStep(r, "changed");
  expect(await venvs()).toEqual(["someone-elses"]);
  expect((await sshRun(sb, "test -e /var/lib/pulumi-vllm/vllm-install")).code).not.toBe(0);
});
