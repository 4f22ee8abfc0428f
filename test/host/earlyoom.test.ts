// Host tier: the earlyoom step on a real Debian host (systemd-nspawn sandbox)
// with the real earlyoom package and its real systemd unit.
import {
  bootSandbox,
  expectStep,
  expectStepFailure,
  diffSnapshots,
  dpkgSelections,
  fileTimer,
  hostSnapshot,
  runStep,
  Sandbox,
  shutdownSandbox,
  sshOk,
  sshRun,
  systemctl,
} from "./sandbox";

jest.setTimeout(10 * 60_000);

const CONF = "/etc/default/earlyoom";
const OWNED = [CONF, "/var/lib/pulumi-vllm"];
// Seed 000: kill vLLM first, never sshd or the shells.
const AVOID = "^(sshd|ssh|bash|zsh|systemd)$";
const PREFER = "^(vllm|python3?)$";
const env = (extra: Record<string, string> = {}) => ({
  PV_EARLYOOM_MEM_PERCENT: "5",
  PV_EARLYOOM_SWAP_PERCENT: "10",
  PV_EARLYOOM_AVOID: AVOID,
  PV_EARLYOOM_PREFER: PREFER,
  PV_APT_LOCK_TIMEOUT: "120",
  ...extra,
});

let sb: Sandbox;
const timer = fileTimer("earlyoom.test.ts");

const earlyoom = (action: "create" | "delete", extra: Record<string, string> = {}) =>
  runStep(sb, { step: "earlyoom", action, env: action === "create" ? env(extra) : {} });

async function mainPid(): Promise<number> {
  return Number((await sshOk(sb, "systemctl show -p MainPID --value earlyoom.service")).trim());
}
async function argvOf(pid: number): Promise<string[]> {
  const out = await sshOk(sb, `tr '\\0' '\\n' < /proc/${pid}/cmdline`);
  return out.replace(/\n$/, "").split("\n");
}

beforeAll(async () => {
  sb = await bootSandbox("pvt-earlyoom");
  timer.mark("boot");
});

afterAll(async () => {
  if (sb) await shutdownSandbox(sb);
  timer.done();
});

describe("earlyoom step, on a host without earlyoom", () => {
  let pristineSel: string[];

  it("first run installs, configures and starts earlyoom (changed)", async () => {
    pristineSel = await dpkgSelections(sb);
    expect((await sshRun(sb, `test -e ${CONF}`)).code).not.toBe(0);
    const r = await earlyoom("create");
    expectStep(r, "changed");
    expect((await systemctl(sb, "is-active", "earlyoom")).stdout.trim()).toBe("active");
    expect((await systemctl(sb, "is-enabled", "earlyoom")).stdout.trim()).toBe("enabled");
    expect(await sshOk(sb, `cat ${CONF}`)).toContain(
      `EARLYOOM_ARGS="-m 5 -s 10 -r 3600 --avoid '${AVOID}' --prefer '${PREFER}'"`,
    );
    // The init.d script sources the file with /bin/sh: it must read the same there.
    expect(await sshOk(sb, `sh -c '. ${CONF}; printf "%s" "$EARLYOOM_ARGS"'`)).toBe(
      `-m 5 -s 10 -r 3600 --avoid '${AVOID}' --prefer '${PREFER}'`,
    );
    // The running daemon got exactly these arguments, regexes intact...
    expect(await argvOf(await mainPid())).toEqual([
      "/usr/bin/earlyoom", "-m", "5", "-s", "10", "-r", "3600", "--avoid", AVOID, "--prefer", PREFER,
    ]);
    // ...and understood them (its own startup report in the journal).
    const journal = await sshOk(sb, "journalctl -u earlyoom --no-pager -o cat | tail -n 30");
    expect(journal).toContain(`Will avoid killing process names that match regex '${AVOID}'`);
    expect(journal).toContain(`Preferring to kill process names that match regex '${PREFER}'`);
    timer.mark("install");
  });

  it("second run is unchanged: no file touched, no restart", async () => {
    const before = await hostSnapshot(sb, OWNED);
    const pid = await mainPid();
    const r = await earlyoom("create");
    expectStep(r, "unchanged");
    expect(diffSnapshots(before, await hostSnapshot(sb, OWNED))).toEqual([]);
    expect(await mainPid()).toBe(pid);
  });

  it("a changed threshold rewrites the config and restarts earlyoom once", async () => {
    const pid = await mainPid();
    const r = await earlyoom("create", { PV_EARLYOOM_MEM_PERCENT: "7,3", PV_EARLYOOM_SWAP_PERCENT: "15" });
    expectStep(r, "changed");
    expect(r.stderr).toMatch(/config changed: restarting/);
    const pid2 = await mainPid();
    expect(pid2).not.toBe(pid);
    expect((await argvOf(pid2)).slice(1, 5)).toEqual(["-m", "7,3", "-s", "15"]);
    const again = await earlyoom("create", { PV_EARLYOOM_MEM_PERCENT: "7,3", PV_EARLYOOM_SWAP_PERCENT: "15" });
    expectStep(again, "unchanged");
    expect(await mainPid()).toBe(pid2);
  });

  it("starts earlyoom again when it was stopped, without rewriting the config", async () => {
    await sshOk(sb, "systemctl stop earlyoom");
    const before = await hostSnapshot(sb, [CONF]);
    const r = await earlyoom("create", { PV_EARLYOOM_MEM_PERCENT: "7,3", PV_EARLYOOM_SWAP_PERCENT: "15" });
    expectStep(r, "changed");
    expect((await systemctl(sb, "is-active", "earlyoom")).stdout.trim()).toBe("active");
    expect(diffSnapshots(before, await hostSnapshot(sb, [CONF]))).toEqual([]);
  });

  it("rejects bad inputs with a clear error and leaves the config alone", async () => {
    const before = await hostSnapshot(sb, OWNED);
    for (const [extra, msg] of [
      [{ PV_EARLYOOM_MEM_PERCENT: "five" }, /PV_EARLYOOM_MEM_PERCENT must be a percent/],
      [{ PV_EARLYOOM_MEM_PERCENT: "0" }, /percent 0 is not in \(0, 100\]/],
      [{ PV_EARLYOOM_SWAP_PERCENT: "101" }, /percent 101 is not in \(0, 100\]/],
      [{ PV_EARLYOOM_AVOID: "^(sshd)$' --kill-everything '" }, /PV_EARLYOOM_AVOID may not contain quotes/],
      [{ PV_EARLYOOM_PREFER: "vllm\\b" }, /PV_EARLYOOM_PREFER may not contain quotes, backslashes/],
      [{ PV_EARLYOOM_PREFER: "$(reboot)" }, /PV_EARLYOOM_PREFER: '\$' may only end the regex/],
      [{ PV_EARLYOOM_AVOID: "^(sshd|${HOME})$" }, /PV_EARLYOOM_AVOID: '\$' may only end the regex/],
    ] as const) {
      const r = await earlyoom("create", extra);
      expectStepFailure(r, msg);
    }
    expect(diffSnapshots(before, await hostSnapshot(sb, OWNED))).toEqual([]);
  });

  it("delete purges the earlyoom it installed: the host is as before", async () => {
    const r = await earlyoom("delete");
    expectStep(r, "changed");
    expect(await dpkgSelections(sb)).toEqual(pristineSel);
    expect(await hostSnapshot(sb, OWNED)).toEqual({ [CONF]: { type: "absent" }, "/var/lib/pulumi-vllm": { type: "absent" } });
    expect((await systemctl(sb, "is-active", "earlyoom")).stdout.trim()).not.toBe("active");
    expectStep(await earlyoom("delete"), "unchanged");
  });
});

describe("earlyoom step, on a host that already has earlyoom (stopped, disabled, own config)", () => {
  const OWN = '# the admin\'s own\nEARLYOOM_ARGS="-r 60 -m 3"\n';
  let before: Awaited<ReturnType<typeof hostSnapshot>>;
  let beforeSel: string[];

  beforeAll(async () => {
    // The apt archive cache is shared by every sandbox on this machine (scripts/sandbox/up.sh): another
    // sandbox's apt may hold its lock for a while, which apt-get does not wait for.
    await sshOk(sb, "for i in $(seq 60); do apt-get install -y -q --no-install-recommends earlyoom >/dev/null 2>&1 && exit 0; sleep 5; done; exit 1");
    await sshOk(sb, `cat > ${CONF}`, { stdin: OWN });
    await sshOk(sb, `chmod 640 ${CONF} && touch -d '2020-01-02 03:04:05' ${CONF} && systemctl disable --now earlyoom 2>/dev/null`);
    before = await hostSnapshot(sb, OWNED);
    beforeSel = await dpkgSelections(sb);
  });

  it("create saves the admin's config, writes its own, enables and starts earlyoom", async () => {
    const r = await earlyoom("create");
    expectStep(r, "changed");
    expect(r.stderr).not.toMatch(/installing earlyoom/);
    expect(await sshOk(sb, `cat /var/lib/pulumi-vllm/earlyoom/orig-default`)).toBe(OWN);
    expect((await argvOf(await mainPid())).slice(1, 3)).toEqual(["-m", "5"]);
    expect((await systemctl(sb, "is-enabled", "earlyoom")).stdout.trim()).toBe("enabled");
    expectStep(await earlyoom("create"), "unchanged");
  });

  it("delete restores the admin's config byte for byte (mode, mtime) and the stopped, disabled service", async () => {
    const r = await earlyoom("delete");
    expectStep(r, "changed");
    expect(await hostSnapshot(sb, OWNED)).toEqual(before);
    expect(await dpkgSelections(sb)).toEqual(beforeSel);
    expect((await systemctl(sb, "is-enabled", "earlyoom")).stdout.trim()).toBe("disabled");
    expect((await systemctl(sb, "is-active", "earlyoom")).stdout.trim()).toBe("inactive");
  });
});
