// Host tier: the toolchain step on a real Debian host (systemd-nspawn sandbox)
// with real apt against deb.debian.org. The first create installs the real
// default set of seed 001 (build-essential python3-dev libnuma-dev pkg-config);
// .debs are cached on the machine between runs (scripts/sandbox/up.sh).
import {
  bootSandbox,
  expectStep,
  expectStepFailure,
  dpkgInstalled,
  dpkgSelections,
  diffSnapshots,
  fileTimer,
  holdFileLock,
  hostSnapshot,
  runStep,
  Sandbox,
  shutdownSandbox,
  sshOk,
  sshRun,
} from "./sandbox";

jest.setTimeout(20 * 60_000);

const DEFAULT_PACKAGES = ["build-essential", "python3-dev", "libnuma-dev", "pkg-config"];
// What apt/dpkg keep about installed packages, plus our state: a run that
// installs nothing must change none of it (and must not run apt-get update).
const APT_STATE = ["/var/lib/dpkg/status", "/var/lib/apt/extended_states", "/var/lib/apt/lists", "/var/lib/pulumi-vllm"];

let sb: Sandbox;
const timer = fileTimer("toolchain.test.ts");

const toolchain = (action: "create" | "delete", packages: string[] = [], extra: Record<string, string> = {}) =>
  runStep(sb, {
    step: "toolchain",
    action,
    env: action === "create" ? { PV_PACKAGES: packages.join(" "), PV_APT_LOCK_TIMEOUT: "120", ...extra } : {},
  });

async function installed(pkg: string): Promise<boolean> {
  return (await sshRun(sb, `dpkg-query -W -f='\${db:Status-Abbrev}' ${pkg} 2>/dev/null | grep -q '^ii'`)).code === 0;
}

beforeAll(async () => {
  sb = await bootSandbox("pvt-toolchain");
  timer.mark("boot");
});

afterAll(async () => {
  if (sb) await shutdownSandbox(sb);
  timer.done();
});

describe("toolchain step", () => {
  let pristine: string[];

  it("first run installs the missing packages (changed)", async () => {
    pristine = await dpkgSelections(sb);
    expect(await installed("curl")).toBe(true); // pre-existing, asked for below too
    for (const p of DEFAULT_PACKAGES) expect(await installed(p)).toBe(false);
    const r = await toolchain("create", [...DEFAULT_PACKAGES, "curl"]);
    expectStep(r, "changed");
    for (const p of DEFAULT_PACKAGES) expect(await installed(p)).toBe(true);
    expect((await sshOk(sb, "gcc --version | head -1"))).toMatch(/gcc/);
    expect((await sshOk(sb, "python3-config --includes"))).toMatch(/python3/);
    expect((await sshOk(sb, "cat /var/lib/pulumi-vllm/toolchain/requested")).trim().split("\n")).toEqual(
      [...DEFAULT_PACKAGES].sort(),
    );
    timer.mark("install default set");
  });

  it("second run installs nothing, runs no apt-get update, changes no file", async () => {
    const before = await hostSnapshot(sb, APT_STATE);
    const r = await toolchain("create", [...DEFAULT_PACKAGES, "curl"]);
    expectStep(r, "unchanged");
    expect(r.stderr).not.toMatch(/apt-get update/);
    expect(diffSnapshots(before, await hostSnapshot(sb, APT_STATE))).toEqual([]);
  });

  it("an added package is installed; a dropped one it installed is removed again", async () => {
    const afterFirst = await dpkgInstalled(sb);
    let r = await toolchain("create", [...DEFAULT_PACKAGES, "libffi-dev"]);
    expectStep(r, "changed");
    expect(await installed("libffi-dev")).toBe(true);
    r = await toolchain("create", DEFAULT_PACKAGES);
    expectStep(r, "changed");
    expect(await installed("libffi-dev")).toBe(false);
    expect(await dpkgInstalled(sb)).toEqual(afterFirst);
    expectStep(await toolchain("create", DEFAULT_PACKAGES), "unchanged");
  });

  it("rejects bad package names before touching apt", async () => {
    const r = await toolchain("create", ["pkg-config", "-o=Dir::Etc=/tmp"]);
    expectStepFailure(r, /bad package name '-o=Dir::Etc=\/tmp'/);
  });

  it("delete removes exactly what it installed and keeps what was there", async () => {
    const r = await toolchain("delete");
    expectStep(r, "changed");
    for (const p of DEFAULT_PACKAGES) expect(await installed(p)).toBe(false);
    expect(await installed("curl")).toBe(true);
    expect(await dpkgSelections(sb)).toEqual(pristine);
    expect((await sshRun(sb, "test -e /var/lib/pulumi-vllm")).code).not.toBe(0);
    expectStep(await toolchain("delete"), "unchanged");
    timer.mark("delete default set");
  });

  it("an unknown package fails with a clear error and installs nothing", async () => {
    const before = await dpkgSelections(sb);
    const r = await toolchain("create", ["pkg-config", "libnuma-dev", "no-such-package-pv"]);
    expectStepFailure(r, /unknown package\(s\) .*: no-such-package-pv\. Nothing was installed/);
    expect(await installed("pkg-config")).toBe(false);
    expect(await dpkgSelections(sb)).toEqual(before);
    expect((await sshRun(sb, "test -e /var/lib/pulumi-vllm")).code).not.toBe(0);
  });

  it("waits for a held dpkg frontend lock, then installs", async () => {
    const hold = 12;
    await holdFileLock(sb, "/var/lib/dpkg/lock-frontend", hold, "pv-hold-dpkg");
    const t0 = Date.now();
    const r = await toolchain("create", ["pkg-config"]);
    const waited = (Date.now() - t0) / 1000;
    expectStep(r, "changed");
    expect(r.stderr).toMatch(/lock-frontend/);
    expect(waited).toBeGreaterThanOrEqual(hold - 3);
    expect(await installed("pkg-config")).toBe(true);
  });

  it("waits for a held apt lists lock (apt-get update), then installs", async () => {
    const hold = 10;
    await holdFileLock(sb, "/var/lib/apt/lists/lock", hold, "pv-hold-lists");
    const t0 = Date.now();
    const r = await toolchain("create", ["pkg-config", "libnuma-dev"]);
    const waited = (Date.now() - t0) / 1000;
    expectStep(r, "changed");
    expect(r.stderr).toMatch(/apt is locked by another process .*waiting up to 120s/);
    expect(waited).toBeGreaterThanOrEqual(hold - 3);
    expect(await installed("libnuma-dev")).toBe(true);
  });

  it("gives up with a clear error when the lock is held longer than PV_APT_LOCK_TIMEOUT", async () => {
    await holdFileLock(sb, "/var/lib/apt/lists/lock", 30, "pv-hold-long");
    const r = await toolchain("create", ["pkg-config", "libnuma-dev", "libffi-dev"], { PV_APT_LOCK_TIMEOUT: "4" });
    expectStepFailure(r, /Could not get lock \/var\/lib\/apt\/lists\/lock/);
    expect(r.stderr).toMatch(/apt-get update failed/);
    expect(await installed("libffi-dev")).toBe(false);
    await sshRun(sb, "systemctl stop pv-hold-long; true");
  });

  it("delete after those runs leaves the host as before", async () => {
    expectStep(await toolchain("delete"), "changed");
    expect(await dpkgSelections(sb)).toEqual(pristine);
  });
});
