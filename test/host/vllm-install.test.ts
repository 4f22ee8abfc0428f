// Host tier: components/host/scripts/vllm-install.sh on a real Debian bookworm
// over SSH. vLLM itself (GBs of CUDA wheels) cannot be installed here, so the
// same code path installs a small real PyPI package (six) with a pinned
// version, and the vllm-standin wheel (test/standin) through --find-links.
import {
  bootSandbox, diffSnapshots, fileTimer, hostSnapshot, runStep, Sandbox, shutdownSandbox, sshOk, sshRun,
} from "./sandbox";
import {
  expectStep, putStandinWheels, setupVenv, standinInstallEnv, trustMachineCAs, UV_BIN, VENV,
} from "../standin/fixtures";

jest.setTimeout(600_000);
const timer = fileTimer("vllm-install.test.ts");
let sb: Sandbox;

const sixEnv = (version: string, over: Record<string, string> = {}) => ({
  PV_VENV_PATH: VENV,
  PV_UV_BIN: UV_BIN(),
  PV_PACKAGE: `six==${version}`,
  PV_DIST_NAME: "six",
  PV_DIST_VERSION: version,
  PV_IMPORT_NAME: "six",
  ...over,
});
const install = (env: Record<string, string>) => runStep(sb, { step: "vllm-install", action: "create", env });
const uninstall = (env: Record<string, string>) => runStep(sb, { step: "vllm-install", action: "delete", env });
const distVersion = async (dist: string) =>
  (await sshOk(sb, `${VENV}/bin/python -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' ${dist}`)).trim();
const SITE = `${VENV}/lib/python3.11/site-packages`;

beforeAll(async () => {
  sb = await bootSandbox("h3-vi");
  timer.mark("boot");
  await trustMachineCAs(sb);
  await setupVenv(sb);
  timer.mark("uv-venv");
});

afterAll(async () => {
  if (sb) await shutdownSandbox(sb);
  timer.done();
});

test("installs the pinned version from PyPI and verifies it by importing it", async () => {
  const r = await install(sixEnv("1.16.0"));
  expectStep(r, "changed");
  expect(await distVersion("six")).toBe("1.16.0");
  expect(r.stderr).toMatch(/'import six' works/);
});

test("the same version again: unchanged, nothing in the venv or the state touched", async () => {
  const paths = [SITE, "/var/lib/pulumi-vllm"];
  const snap = await hostSnapshot(sb, paths);
  expectStep(await install(sixEnv("1.16.0")), "unchanged");
  expect(diffSnapshots(snap, await hostSnapshot(sb, paths))).toEqual([]);
});

test("a version change installs the new one", async () => {
  const r = await install(sixEnv("1.17.0"));
  expectStep(r, "changed");
  expect(await distVersion("six")).toBe("1.17.0");
  expectStep(await install(sixEnv("1.17.0")), "unchanged");
});

test("an installed version that does not import is reinstalled", async () => {
  await sshOk(sb, `rm -f ${SITE}/six.py`);
  const r = await install(sixEnv("1.17.0"));
  expectStep(r, "changed");
  expect(r.stderr).toMatch(/'import six' fails; reinstalling/);
  await sshOk(sb, `${VENV}/bin/python -c 'import six'`);
});

test("bad inputs fail clearly and leave the installed version intact", async () => {
  const snap = await hostSnapshot(sb, [SITE]);
  let r = await install(sixEnv("1.17.0", { PV_DIST_VERSION: "1.15.0" }));
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/pins 1\.17\.0 but PV_DIST_VERSION is 1\.15\.0/);
  r = await install(sixEnv("99.0.0"));
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/uv pip install 'six==99\.0\.0' into \/opt\/pulumi-vllm\/venv failed/);
  r = await install(sixEnv("1.17.0", { PV_VENV_PATH: "/opt/nowhere" }));
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/no venv at \/opt\/nowhere \(run the uv-venv step first\)/);
  r = await install(sixEnv("1.17.0", { PV_PACKAGE: "--index-url=http://evil" }));
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/PV_PACKAGE must be a requirement/);
  expect(diffSnapshots(snap, await hostSnapshot(sb, [SITE]))).toEqual([]);
  expect(await distVersion("six")).toBe("1.17.0");
});

test("the vllm-standin wheel installs through --find-links and provides `vllm`", async () => {
  putStandinWheels(sb, ["0.11.0", "0.12.0"]);
  let r = await install(standinInstallEnv("0.11.0"));
  expectStep(r, "changed");
  expect(r.stderr).toMatch(/--no-index --find-links \/opt\/pv-test-wheels/);
  expect((await sshOk(sb, `${VENV}/bin/vllm --version`)).trim()).toBe("0.11.0 (vllm-standin, not vLLM)");
  expectStep(await install(standinInstallEnv("0.11.0")), "unchanged");
  // a pinned version change (the renderer's flag table follows it)
  r = await install(standinInstallEnv("0.12.0"));
  expectStep(r, "changed");
  expect((await sshOk(sb, `${VENV}/bin/vllm --version`)).trim()).toBe("0.12.0 (vllm-standin, not vLLM)");
  // 0.12.0 refuses a flag vLLM removed in 0.12 (--guided-decoding-backend) the way vLLM's argparse does
  const bad = await sshRun(sb, `${VENV}/bin/vllm serve m --guided-decoding-backend xgrammar`);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/vllm: error: unrecognized arguments: --guided-decoding-backend/);
});

test("delete uninstalls; a second delete is unchanged", async () => {
  expectStep(await uninstall(standinInstallEnv("0.12.0")), "changed");
  expect((await sshRun(sb, `test -e ${VENV}/bin/vllm`)).code).not.toBe(0);
  expectStep(await uninstall(sixEnv("1.17.0")), "changed");
  expect((await sshRun(sb, `${VENV}/bin/python -c 'import six'`)).code).not.toBe(0);
  expectStep(await uninstall(sixEnv("1.17.0")), "unchanged");
  expect((await sshRun(sb, "test -e /var/lib/pulumi-vllm/vllm-install")).code).not.toBe(0);
  // with the venv gone, delete is a no-op
  expectStep(await uninstall(sixEnv("1.17.0", { PV_VENV_PATH: "/opt/gone" })), "unchanged");
});
