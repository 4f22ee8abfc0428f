// Host tier: a step that fails half-way leaves the host as it found it
// (components/host/scripts/lib/txn.sh), step by step, on a real systemd host.
// Why it matters: the upstream Command provider records nothing for a failed
// create (its delete never runs) and keeps the old inputs after a failed
// update (a reverted config runs nothing). Failures are real ones: systemd
// refusing to start a unit, an fstab that cannot be written, a package whose
// maintainer script fails, an install that does not verify.
import {
  bootSandbox, diffSnapshots, fileTimer, hostSnapshot, runStep, Sandbox, shutdownSandbox, sshOk, sshRun, Snapshot,
} from "./sandbox";
import {
  envFilePath, expectStep, installStandin, launch, mainPid, readRecord, setupVenv, standinInstallEnv,
  StandinUnitOpts, trustMachineCAs, UV_BIN, VENV,
} from "../standin/fixtures";
import { freePort } from "./sandbox";

jest.setTimeout(600_000);
const timer = fileTimer("rollback.test.ts");
let sb: Sandbox;
const UNIT = "vllm-rb.service";
const UNIT_FILE = `/etc/systemd/system/${UNIT}`;
const secrets = { VLLM_API_KEY: "sk-rollback-test-key" };

beforeAll(async () => {
  sb = await bootSandbox("h-rollback");
  timer.mark("boot");
  await trustMachineCAs(sb);
  await setupVenv(sb);
  await installStandin(sb, "0.11.0");
  timer.mark("venv + stand-in");
});

afterAll(async () => {
  if (sb) await shutdownSandbox(sb);
  timer.done();
});

/** A drop-in that makes `unit` fail to start while its unit file matches `re` (a real systemd failure). */
async function faultWhen(unit: string, re: string) {
  const dir = `/etc/systemd/system/${unit}.d`;
  await sshOk(sb, `mkdir -p ${dir} && printf '%s\\n' '[Service]' "ExecStartPre=/bin/sh -c '! grep -qE -- \\"${re}\\" /etc/systemd/system/${unit} /etc/default/earlyoom 2>/dev/null'" > ${dir}/pv-fault.conf && systemctl daemon-reload`);
}
async function noFault(unit: string) {
  await sshOk(sb, `rm -rf /etc/systemd/system/${unit}.d && systemctl daemon-reload`);
}
const noJournal = async () => expect((await sshRun(sb, "find /var/lib/pulumi-vllm/txn -mindepth 2 2>/dev/null | head -n 5")).stdout).toBe("");

describe("launch-unit", () => {
  let unit: StandinUnitOpts;
  const OWNED = [UNIT_FILE, "/etc/pulumi-vllm", "/var/lib/pulumi-vllm/launch-unit"];
  beforeAll(async () => {
    unit = { unitName: UNIT, port: await freePort() };
  });

  test("a create whose start fails leaves no unit, no env file, no state", async () => {
    const before = await hostSnapshot(sb, OWNED);
    await faultWhen(UNIT, "ExecStart=");
    const r = await launch(sb, unit, secrets);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/systemctl (start|restart) vllm-rb\.service failed/);
    expect(r.stderr).toMatch(/rolled back/);
    expect(r.stderr + r.stdout).not.toContain(secrets.VLLM_API_KEY);
    expect(diffSnapshots(before, await hostSnapshot(sb, OWNED), { ignoreDirMtime: true })).toEqual([]);
    expect((await sshRun(sb, `systemctl is-enabled ${UNIT}`)).stdout.trim()).not.toBe("enabled");
    await noJournal();
    await noFault(UNIT);
  });

  test("an update whose restart fails puts the previous unit and env file back, byte for byte, and the previous server runs again", async () => {
    expectStep(await launch(sb, unit, secrets), "changed");
    const good = await hostSnapshot(sb, [UNIT_FILE, envFilePath(UNIT)]);
    const oldPid = await mainPid(sb, UNIT);
    await faultWhen(UNIT, "max-model-len[^0-9]+4096");
    const r = await launch(sb, { ...unit, extraArgs: ["--max-model-len", "4096"] }, { VLLM_API_KEY: "sk-a-new-key" });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/rollback: restarting the previous vllm-rb\.service/);
    expect(diffSnapshots(good, await hostSnapshot(sb, [UNIT_FILE, envFilePath(UNIT)]))).toEqual([]);
    expect((await sshOk(sb, `systemctl is-active ${UNIT}`)).trim()).toBe("active");
    const pid = await mainPid(sb, UNIT);
    expect(pid).not.toBe(oldPid);
    const rec = await readRecord(sb, UNIT, pid);
    expect(rec.argv.join(" ")).not.toContain("--max-model-len 4096");
    expect(rec.env.VLLM_API_KEY).toBe(secrets.VLLM_API_KEY);
    await noJournal();
    await noFault(UNIT);
    // the same good input again: nothing to do
    expectStep(await launch(sb, unit, secrets), "unchanged");
  });
});

describe("swapfile", () => {
  const SWAP = "/swapfile-rb";
  const OWNED = ["/etc/fstab", SWAP, "/var/lib/pulumi-vllm/swapfile"];
  const env = (over: Record<string, string> = {}) => ({ PV_SWAP_PATH: SWAP, PV_SWAP_SIZE_MIB: "32", PV_SWAP_MIN_FREE_MIB: "64", ...over });
  afterAll(async () => {
    await runStep(sb, { step: "swapfile", action: "delete", env: env() });
  });

  test("a create that fails after the file is made and swapped on leaves no file, no swap, no state", async () => {
    const before = await hostSnapshot(sb, OWNED);
    // /etc/fstab cannot be rewritten when its directory is not there: fails after swapon
    const r = await runStep(sb, { step: "swapfile", action: "create", env: env({ PV_FSTAB: "/nonexistent-dir/fstab" }) });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/rollback: removing \/swapfile-rb/);
    expect(diffSnapshots(before, await hostSnapshot(sb, OWNED), { ignoreDirMtime: true })).toEqual([]);
    expect(await sshOk(sb, "swapon --show=NAME --noheadings")).not.toContain(SWAP);
    await noJournal();
  });

  test("a resize that fails puts a swap file of the old size back, on, with its fstab line", async () => {
    expectStep(await runStep(sb, { step: "swapfile", action: "create", env: env() }), "changed");
    const fstab = await sshOk(sb, "cat /etc/fstab");
    const r = await runStep(sb, { step: "swapfile", action: "create", env: env({ PV_SWAP_SIZE_MIB: "48", PV_FSTAB: "/nonexistent-dir/fstab" }) });
    expect(r.code).not.toBe(0);
    expect(Number(await sshOk(sb, `stat -c %s ${SWAP}`))).toBe(32 * 1048576);
    expect(await sshOk(sb, "swapon --show=NAME --noheadings")).toContain(SWAP);
    expect(await sshOk(sb, "cat /etc/fstab")).toBe(fstab);
    await noJournal();
    expectStep(await runStep(sb, { step: "swapfile", action: "create", env: env() }), "unchanged");
  });
});

describe("earlyoom", () => {
  const OWNED = ["/etc/default/earlyoom", "/var/lib/pulumi-vllm/earlyoom"];
  const env = (mem: string) => ({
    PV_EARLYOOM_MEM_PERCENT: mem, PV_EARLYOOM_SWAP_PERCENT: "10", PV_EARLYOOM_AVOID: "^(sshd|bash)$", PV_EARLYOOM_PREFER: "^(vllm)$",
  });
  afterAll(async () => {
    await noFault("earlyoom.service");
    await runStep(sb, { step: "earlyoom", action: "delete", env: env("5") });
  });

  test("an update that earlyoom refuses to start with puts the previous config back and earlyoom runs with it", async () => {
    expectStep(await runStep(sb, { step: "earlyoom", action: "create", env: env("5") }), "changed");
    const good = await hostSnapshot(sb, OWNED);
    await faultWhen("earlyoom.service", "-m 7 ");
    const r = await runStep(sb, { step: "earlyoom", action: "create", env: env("7") });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/rollback: restoring \/etc\/default\/earlyoom/);
    expect(diffSnapshots(good, await hostSnapshot(sb, OWNED))).toEqual([]);
    expect((await sshOk(sb, "systemctl is-active earlyoom")).trim()).toBe("active");
    expect(await sshOk(sb, "tr '\\0' ' ' </proc/$(systemctl show -p MainPID --value earlyoom)/cmdline")).toContain("-m 5 ");
    await noJournal();
  });
});

describe("vllm-install", () => {
  test("an install that does not verify puts the venv's previous packages back", async () => {
    const freeze = () => sshOk(sb, `${UV_BIN()} pip freeze --python ${VENV}/bin/python`);
    const before = await freeze();
    expect(before).toContain("vllm-standin==0.11.0");
    await installStandin(sb, "0.11.0");
    // installs 0.11.1, which is not the version the step was told to expect: the check fails after the install
    const { putStandinWheels } = await import("../standin/fixtures");
    putStandinWheels(sb, ["0.11.1"]);
    const r = await runStep(sb, { step: "vllm-install", action: "create", env: { ...standinInstallEnv("0.11.0"), PV_PACKAGE: "vllm-standin>=0.11.1", PV_DIST_VERSION: "0.11.2" } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/reports version '0\.11\.1', not 0\.11\.2/);
    expect(r.stderr).toMatch(/rolled back/);
    expect(await freeze()).toBe(before);
    await noJournal();
  });
});

describe("toolchain", () => {
  // A local apt repository with two packages: pv-test-ok installs, pv-test-broken's
  // postinst fails (apt-get install fails half-way).
  async function brokenPackageRepo() {
    await sshOk(sb, `set -e
      d=/srv/pv-test-repo; rm -rf $d; mkdir -p $d; : >$d/Packages
      for p in ok broken; do
        mkdir -p $d/$p/DEBIAN
        printf 'Package: pv-test-%s\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: test <t@example.com>\\nDescription: test package %s\\n' $p $p >$d/$p/DEBIAN/control
        if [ $p = broken ]; then printf '#!/bin/sh\\necho pv-test-broken postinst fails >&2\\nexit 1\\n' >$d/$p/DEBIAN/postinst; chmod 755 $d/$p/DEBIAN/postinst; fi
        f=pv-test-\${p}_1.0_all.deb
        dpkg-deb --build $d/$p $d/$f >/dev/null
        { cat $d/$p/DEBIAN/control; echo "Filename: ./$f"; echo "Size: $(stat -c %s $d/$f)"; echo "SHA256: $(sha256sum $d/$f | cut -d' ' -f1)"; echo; } >>$d/Packages
      done
      echo "deb [trusted=yes allow-insecure=yes] file:$d ./" >/etc/apt/sources.list.d/pv-test.list`);
  }
  // Packages with anything on disk, with their state.
  const present = "dpkg-query -W -f '${Package} ${db:Status-Abbrev}\\n' | awk 'substr($2, 2, 1) != \"n\"' | sort";
  afterAll(async () => {
    await sshRun(sb, "rm -rf /srv/pv-test-repo /etc/apt/sources.list.d/pv-test.list; apt-get update -qq");
  });

  test("an install whose maintainer script fails purges what that run installed and records nothing", async () => {
    await brokenPackageRepo();
    const dpkgBefore = await sshOk(sb, present);
    const stateBefore: Snapshot = await hostSnapshot(sb, ["/var/lib/pulumi-vllm/toolchain"]);
    const r = await runStep(sb, { step: "toolchain", action: "create", env: { PV_PACKAGES: "pv-test-broken", PV_APT_LOCK_TIMEOUT: "60" } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/rollback: purging pv-test-broken/);
    expect(await sshOk(sb, present)).toBe(dpkgBefore);
    expect(diffSnapshots(stateBefore, await hostSnapshot(sb, ["/var/lib/pulumi-vllm/toolchain"]), { ignoreDirMtime: true })).toEqual([]);
    await noJournal();
  });
  test("an update whose install fails keeps the package it no longer asks for (removed only after the new ones are in)", async () => {
    await brokenPackageRepo();
    const env = (pkgs: string) => ({ PV_PACKAGES: pkgs, PV_APT_LOCK_TIMEOUT: "60" });
    expect((await runStep(sb, { step: "toolchain", action: "create", env: env("pv-test-ok") })).code).toBe(0);
    const dpkgBefore = await sshOk(sb, present);
    expect(dpkgBefore).toMatch(/^pv-test-ok ii/m);
    const stateBefore: Snapshot = await hostSnapshot(sb, ["/var/lib/pulumi-vllm/toolchain"]);
    const r = await runStep(sb, { step: "toolchain", action: "create", env: env("pv-test-broken") });
    expect(r.code).not.toBe(0);
    expect(await sshOk(sb, present)).toBe(dpkgBefore);
    expect(diffSnapshots(stateBefore, await hostSnapshot(sb, ["/var/lib/pulumi-vllm/toolchain"]), { ignoreDirMtime: true })).toEqual([]);
    await noJournal();
    // and the delete still removes what the step installed
    expect((await runStep(sb, { step: "toolchain", action: "delete", env: env("") })).code).toBe(0);
    expect(await sshOk(sb, present)).not.toMatch(/pv-test-ok/);
  });
});
