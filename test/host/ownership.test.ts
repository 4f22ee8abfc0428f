// Host tier: steps take over nothing they did not make, and delete only what
// they made. A unit, a venv, a swap file or an earlyoom config that was on the
// host before is refused (or, with PV_ADOPT=1, taken over and given back on
// delete), never overwritten and then deleted.
import { bootSandbox, fileTimer, freePort, runStep, Sandbox, shutdownSandbox, sshOk, sshRun } from "./sandbox";
import { expectStep, installStandin, launch, setupVenv, trustMachineCAs, UV_BIN } from "../standin/fixtures";

jest.setTimeout(600_000);
const timer = fileTimer("ownership.test.ts");
let sb: Sandbox;
const secrets = { VLLM_API_KEY: "sk-ownership-test" };
const sha = async (p: string) => (await sshOk(sb, `sha256sum ${p} | cut -c1-64`)).trim();

beforeAll(async () => {
  sb = await bootSandbox("h-owner");
  timer.mark("boot");
  await trustMachineCAs(sb);
});

afterAll(async () => {
  if (sb) await shutdownSandbox(sb);
  timer.done();
});

describe("launch-unit", () => {
  const UNIT = "someones.service";
  const FILE = `/etc/systemd/system/${UNIT}`;
  beforeAll(async () => {
    await sshOk(sb, `printf '[Unit]\\nDescription=not pulumi-vllm\\n[Service]\\nExecStart=/bin/sleep infinity\\n[Install]\\nWantedBy=multi-user.target\\n' >${FILE} && systemctl daemon-reload && systemctl enable --now ${UNIT}`);
  });

  test("a unit of the same name that it did not make is refused, untouched, still running", async () => {
    const before = await sha(FILE);
    const r = await launch(sb, { unitName: UNIT, port: await freePort() }, secrets);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/someones\.service already exists on this host and was not made by pulumi-vllm: refusing to overwrite it .* -> choose another host\.unitName, or list 'unit' in host\.adopt/);
    expect(await sha(FILE)).toBe(before);
    expect((await sshOk(sb, `systemctl is-active ${UNIT}`)).trim()).toBe("active");
    expect((await sshRun(sb, `test -e /etc/pulumi-vllm/${UNIT}.env`)).code).not.toBe(0);
  });

  test("a package's unit (ssh.service) is refused too", async () => {
    const r = await launch(sb, { unitName: "ssh.service", port: await freePort() }, secrets);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ssh\.service already exists on this host/);
    expect((await sshRun(sb, "test -e /etc/systemd/system/ssh.service")).code).not.toBe(0);
    expect((await sshOk(sb, "systemctl is-active ssh")).trim()).toBe("active");
  });

  test("with PV_ADOPT=1 it takes the unit over, and delete gives the original back, running", async () => {
    await setupVenv(sb);
    await installStandin(sb, "0.11.0");
    const before = await sha(FILE);
    const r = await launch(sb, { unitName: UNIT, port: await freePort() }, secrets, { PV_ADOPT: "1" });
    expectStep(r, "changed");
    expect(await sha(FILE)).not.toBe(before);
    const del = await runStep(sb, { step: "launch-unit", action: "delete", env: { PV_UNIT_NAME: UNIT, PV_ENV_FILE: `/etc/pulumi-vllm/${UNIT}.env` } });
    expectStep(del, "changed");
    expect(await sha(FILE)).toBe(before);
    expect((await sshOk(sb, `systemctl is-active ${UNIT}`)).trim()).toBe("active");
    expect((await sshOk(sb, `systemctl show -p ExecStart --value ${UNIT}`))).toContain("/bin/sleep");
  });
});

describe("uv-venv", () => {
  const OTHER = "/opt/someones-venv";
  const env = (over: Record<string, string> = {}) => ({ PV_UV_VERSION: "0.13.9", PV_VENV_PATH: OTHER, PV_PYTHON: "3.11", ...over });
  beforeAll(async () => {
    await sshOk(sb, `${UV_BIN()} venv --no-project --python 3.11 ${OTHER} >/dev/null 2>&1 && touch ${OTHER}/marker`);
  });

  test("a venv it did not make is refused; with PV_ADOPT=1 it is used and delete leaves it", async () => {
    const r = await runStep(sb, { step: "uv-venv", action: "create", env: env() });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/\/opt\/someones-venv is a venv that pulumi-vllm did not make: refusing .* -> choose another host\.venvPath, or list 'venv' in host\.adopt/);
    expectStep(await runStep(sb, { step: "uv-venv", action: "create", env: env({ PV_ADOPT: "1" }) }), "changed");
    await runStep(sb, { step: "uv-venv", action: "delete", env: env() });
    expect((await sshRun(sb, `test -f ${OTHER}/marker && test -f ${OTHER}/pyvenv.cfg`)).code).toBe(0);
  });
});

describe("swapfile", () => {
  test("a file at the swap path that is not a swap file (even /etc/passwd) is never touched", async () => {
    const before = await sha("/etc/passwd");
    const r = await runStep(sb, { step: "swapfile", action: "create", env: { PV_SWAP_PATH: "/etc/passwd", PV_SWAP_SIZE_MIB: "16", PV_SWAP_MIN_FREE_MIB: "64" } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/\/etc\/passwd exists and is not a swap file: refusing to touch it -> choose another host\.swap\.path/);
    expect(await sha("/etc/passwd")).toBe(before);
  });

  test("a swap file of another size that it did not make is refused, untouched", async () => {
    await sshOk(sb, "dd if=/dev/zero of=/swap-someone bs=1M count=16 status=none && chmod 600 /swap-someone && mkswap /swap-someone >/dev/null");
    const before = await sha("/swap-someone");
    const r = await runStep(sb, { step: "swapfile", action: "create", env: { PV_SWAP_PATH: "/swap-someone", PV_SWAP_SIZE_MIB: "32", PV_SWAP_MIN_FREE_MIB: "64" } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/\/swap-someone is a swap file of 16 MiB that pulumi-vllm did not make: refusing to replace it/);
    expect(await sha("/swap-someone")).toBe(before);
    expect(await sshOk(sb, "grep -c swap-someone /etc/fstab || true")).toBe("0\n");
  });
});

describe("earlyoom", () => {
  test("a config the user wrote before the package was there survives create + delete", async () => {
    const mine = "# mine\nEARLYOOM_ARGS=\"-m 3 -s 3\"\n";
    await sshOk(sb, `dpkg -s earlyoom >/dev/null 2>&1 && exit 1; printf '%s' '${mine}' >/etc/default/earlyoom`);
    const before = await sha("/etc/default/earlyoom");
    const env = { PV_EARLYOOM_MEM_PERCENT: "5", PV_EARLYOOM_SWAP_PERCENT: "10", PV_EARLYOOM_AVOID: "^(sshd)$", PV_EARLYOOM_PREFER: "^(vllm)$" };
    expectStep(await runStep(sb, { step: "earlyoom", action: "create", env }), "changed");
    expectStep(await runStep(sb, { step: "earlyoom", action: "delete", env }), "changed");
    expect((await sshRun(sb, "dpkg -s earlyoom")).code).not.toBe(0);
    expect(await sha("/etc/default/earlyoom")).toBe(before);
  });
});
