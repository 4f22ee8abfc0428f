// Host tier: components/host/scripts/uv-venv.sh on a real Debian bookworm
// (systemd-nspawn sandbox) over SSH; uv comes from PyPI for real.
import {
  bootSandbox, describeRun, diffSnapshots, fileTimer, hostSnapshot, runStep, Sandbox, shutdownSandbox, sshOk, sshRun,
} from "./sandbox";
import { readStepScript, renderRemoteCommand, stepResult } from "../../components/host/remote-command";
import { expectStep, trustMachineCAs, UV_BIN, UV_VERSION, UV_VERSION_OLD, uvVenvEnv, VENV } from "../standin/fixtures";

jest.setTimeout(600_000);
const timer = fileTimer("uv-venv.test.ts");
const OWNED = ["/opt/pulumi-vllm", "/var/lib/pulumi-vllm"];
let sb: Sandbox;
let before: Awaited<ReturnType<typeof hostSnapshot>>;

beforeAll(async () => {
  sb = await bootSandbox("h3-uv");
  timer.mark("boot");
  await trustMachineCAs(sb);
  before = await hostSnapshot(sb, OWNED);
});

afterAll(async () => {
  if (sb) await shutdownSandbox(sb);
  timer.done();
});

const create = (over: Record<string, string> = {}) => runStep(sb, { step: "uv-venv", action: "create", env: uvVenvEnv(over) });
const venvPython = async () => (await sshOk(sb, `${VENV}/bin/python -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])'`)).trim();

test("first create installs the pinned uv from PyPI (sha256-checked) and a Python 3.11 venv", async () => {
  const r = await create();
  expectStep(r, "changed");
  expect(r.stderr).toMatch(/sha256 [0-9a-f]{64} verified/);
  expect((await sshOk(sb, `${UV_BIN()} --version`)).trim()).toMatch(new RegExp(`^uv ${UV_VERSION.replace(/\./g, "\\.")}\\b`));
  expect(await venvPython()).toMatch(/^3\.11\./);
  // the uv came from the wheel, not from a GitHub installer
  expect(r.stderr).toMatch(/downloading uv-[\d.]+-py3-none-manylinux/);
  expect(r.stdout.trim().split("\n")).toEqual(["changed"]);
  timer.mark("first create");
});

test("second create says unchanged and changes no file", async () => {
  const snap = await hostSnapshot(sb, OWNED);
  const r = await create();
  expectStep(r, "unchanged");
  expect(diffSnapshots(snap, await hostSnapshot(sb, OWNED))).toEqual([]);
});

test("a venv of another Python version is recreated; the same major.minor is kept", async () => {
  await sshOk(sb, `touch ${VENV}/marker`);
  expectStep(await create({ PV_PYTHON: "/usr/bin/python3.11" }), "unchanged");
  expect((await sshRun(sb, `test -f ${VENV}/marker`)).code).toBe(0);
  // as if the venv had been made by Python 3.10 (bookworm has only 3.11)
  await sshOk(sb, `sed -i 's/^version_info = .*/version_info = 3.10.12/' ${VENV}/pyvenv.cfg`);
  const r = await create();
  expectStep(r, "changed");
  expect(r.stderr).toMatch(/has Python 3\.10\.12, want 3\.11\.\d+: recreating it/);
  expect((await sshRun(sb, `test -e ${VENV}/marker`)).code).not.toBe(0);
  expect(await venvPython()).toMatch(/^3\.11\./);
  expectStep(await create(), "unchanged");
});

test("a Python the host lacks is a clear error and leaves the venv alone (no download)", async () => {
  const snap = await hostSnapshot(sb, OWNED);
  const r = await create({ PV_PYTHON: "3.9" });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/no Python matching '3\.9' on this host/);
  expect(diffSnapshots(snap, await hostSnapshot(sb, OWNED))).toEqual([]);
});

test("a uv version that does not exist is a clear error", async () => {
  const r = await create({ PV_UV_VERSION: "0.0.999" });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/uv 0\.0\.999 is not on https:\/\/pypi\.org/);
});

test("a wheel whose sha256 does not match the index is refused, nothing installed", async () => {
  // A fake index on the sandbox: JSON API with a wrong digest for uv 9.9.9.
  const port = 18000 + Math.floor(Math.random() * 2000);
  await sshOk(sb, [
    "set -e; d=/tmp/fake-index; mkdir -p $d/pypi/uv $d/files",
    "echo 'not a wheel' > $d/files/uv.whl",
    "arch=$(uname -m)",
    `printf '{"info":{"version":"9.9.9"},"releases":{"9.9.9":[{"filename":"uv-9.9.9-py3-none-manylinux_2_17_%s.manylinux2014_%s.whl","url":"../../files/uv.whl","digests":{"sha256":"%s"}}]}}' $arch $arch ${"0".repeat(64)} > $d/pypi/uv/json`,
    `systemd-run --unit=pv-fake-index --working-directory=$d python3 -m http.server ${port} --bind 127.0.0.1 >/dev/null 2>&1`,
    `for i in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:${port}/pypi/uv/json && break; sleep 0.1; done`,
  ].join("\n"));
  try {
    const r = await create({ PV_UV_VERSION: "9.9.9", PV_UV_INDEX_URL: `http://127.0.0.1:${port}` });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/sha256 mismatch for uv-9\.9\.9-.*index says 0{64}/);
    expect((await sshRun(sb, "test -e /opt/pulumi-vllm/uv/9.9.9")).code).not.toBe(0);
    expect((await sshOk(sb, "ls -A /opt/pulumi-vllm/uv")).trim()).toBe(UV_VERSION);
  } finally {
    await sshRun(sb, "systemctl stop pv-fake-index; rm -rf /tmp/fake-index");
  }
});

test("a changed uv pin installs that uv from a PEP 691 simple index, drops the old one, keeps the venv", async () => {
  await sshOk(sb, `touch ${VENV}/marker2`);
  const r = await create({ PV_UV_VERSION: UV_VERSION_OLD, PV_UV_INDEX_URL: "https://pypi.org/simple" });
  expectStep(r, "changed");
  expect((await sshOk(sb, `${UV_BIN(UV_VERSION_OLD)} --version`)).trim()).toMatch(new RegExp(`^uv ${UV_VERSION_OLD.replace(/\./g, "\\.")}\\b`));
  expect(r.stderr).toMatch(new RegExp(`removing uv ${UV_VERSION.replace(/\./g, "\\.")}`));
  expect((await sshOk(sb, "ls -A /opt/pulumi-vllm/uv")).trim()).toBe(UV_VERSION_OLD);
  expect((await sshRun(sb, `test -f ${VENV}/marker2`)).code).toBe(0);
  expectStep(await create({ PV_UV_VERSION: UV_VERSION_OLD }), "unchanged");
  expectStep(await create(), "changed");
});

test("refuses unsafe inputs before touching anything", async () => {
  for (const [over, msg] of [
    [{ PV_VENV_PATH: "/" }, /too shallow/],
    [{ PV_VENV_PATH: "/opt" }, /too shallow/],
    [{ PV_VENV_PATH: "relative/venv" }, /absolute path/],
    [{ PV_UV_VERSION: "latest" }, /PV_UV_VERSION must be a release/],
    [{ PV_PYTHON: "3.11; rm -rf /" }, /PV_PYTHON must be a version/],
  ] as const) {
    const r = await create(over as Record<string, string>);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(msg);
  }
  // a directory that is not a venv is never replaced
  await sshOk(sb, "mkdir -p /srv/data && touch /srv/data/precious");
  const r = await create({ PV_VENV_PATH: "/srv/data" });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/exists and is not a venv/);
  expect((await sshRun(sb, "test -f /srv/data/precious")).code).toBe(0);
});

test("delete removes the venv and the uv; a second delete is unchanged; the host is as before", async () => {
  const r = await runStep(sb, { step: "uv-venv", action: "delete", env: uvVenvEnv() });
  expectStep(r, "changed");
  const again = await runStep(sb, { step: "uv-venv", action: "delete", env: uvVenvEnv() });
  expect(again.result).toBe("unchanged");
  expect(diffSnapshots(before, await hostSnapshot(sb, OWNED))).toEqual([]);
  const ls = await sshRun(sb, `ls ${VENV}`);
  expect(ls.code).not.toBe(0);
  if (r.code !== 0) throw new Error(describeRun(r));
});

test("runs without root on shared dirs (a SLURM login node): PV_UV_DIR, PV_STATE_DIR, venv under the user's tree", async () => {
  await sshOk(sb, "id hpcuser >/dev/null 2>&1 || useradd -m -s /bin/bash hpcuser; install -d -o hpcuser -g hpcuser /shared/hpcuser");
  const asUser = (step: string, action: "create" | "delete", env: Record<string, string>) =>
    sshRun(sb, "runuser -u hpcuser -- " + renderRemoteCommand({ step, script: readStepScript(step), action, env, sudo: false }));
  const expectResult = (r: Awaited<ReturnType<typeof asUser>>, want: string) => {
    if (r.code !== 0 || stepResult(r.stdout) !== want) throw new Error(`want ${want}, got ${describeRun(r)}`);
  };
  const venvEnv = uvVenvEnv({ PV_VENV_PATH: "/shared/hpcuser/venv", PV_UV_DIR: "/shared/hpcuser/uv", PV_STATE_DIR: "/shared/hpcuser/state" });
  // the default (root-owned) dirs are refused with a clear message
  let r = await asUser("uv-venv", "create", uvVenvEnv({ PV_VENV_PATH: "/shared/hpcuser/venv" }));
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/cannot write \/opt\/pulumi-vllm\/uv as hpcuser: run as root \(sudo\) or point PV_UV_DIR/);
  expectResult(await asUser("uv-venv", "create", venvEnv), "changed");
  expectResult(await asUser("uv-venv", "create", venvEnv), "unchanged");
  const six = {
    PV_VENV_PATH: "/shared/hpcuser/venv", PV_UV_BIN: `/shared/hpcuser/uv/${UV_VERSION}/uv`, PV_PACKAGE: "six==1.16.0",
    PV_DIST_NAME: "six", PV_DIST_VERSION: "1.16.0", PV_IMPORT_NAME: "six", PV_STATE_DIR: "/shared/hpcuser/state",
  };
  expectResult(await asUser("vllm-install", "create", six), "changed");
  expectResult(await asUser("vllm-install", "create", six), "unchanged");
  expect((await sshOk(sb, "stat -c %U /shared/hpcuser/venv /shared/hpcuser/uv /shared/hpcuser/state")).trim().split("\n")).toEqual(["hpcuser", "hpcuser", "hpcuser"]);
  expectResult(await asUser("vllm-install", "delete", six), "changed");
  expectResult(await asUser("uv-venv", "delete", venvEnv), "changed");
  expect((await sshOk(sb, "ls -A /shared/hpcuser")).trim()).toBe("");
});
