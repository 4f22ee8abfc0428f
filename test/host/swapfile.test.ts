// Host tier: the swapfile step on a real Debian host (systemd-nspawn sandbox).
// Swap in the sandbox is this machine's own kernel's: files stay tiny (16-32
// MiB) and everything is swapped off at the end.
import {
  bootSandbox,
  expectStep,
  expectStepFailure,
  describeRun,
  diffSnapshots,
  fileTimer,
  hostSnapshot,
  runStep,
  Sandbox,
  shutdownSandbox,
  Snapshot,
  sshOk,
  sshRun,
  swapShow,
} from "./sandbox";

jest.setTimeout(10 * 60_000);

const SWAP = "/swapfile";
const OWNED = [SWAP, "/etc/fstab", "/var/lib/pulumi-vllm"];
const env = (mib: number, extra: Record<string, string> = {}) => ({
  PV_SWAP_PATH: SWAP,
  PV_SWAP_SIZE_MIB: String(mib),
  ...extra,
});

let sb: Sandbox;
const timer = fileTimer("swapfile.test.ts");

// Content, not timestamps: "as before" after delete means same bytes and modes.
function contentOf(s: Snapshot): Snapshot {
  const out: Snapshot = {};
  for (const [k, v] of Object.entries(s)) {
    if (v.type === "directory") out[k] = { type: v.type, mode: v.mode, owner: v.owner };
    else out[k] = { type: v.type, mode: v.mode, owner: v.owner, sha256: v.sha256 };
  }
  return out;
}
async function fstabLinesFor(path: string): Promise<string[]> {
  const out = await sshOk(sb, "cat /etc/fstab");
  return out.split("\n").filter((l) => l.trim().split(/\s+/)[0] === path);
}
async function ourSwap() {
  return (await swapShow(sb)).filter((s) => s.name === SWAP);
}
async function create(mib: number, extra: Record<string, string> = {}) {
  return runStep(sb, { step: "swapfile", action: "create", env: env(mib, extra) });
}

beforeAll(async () => {
  sb = await bootSandbox("pvt-swapfile");
  timer.mark("boot");
});

afterAll(async () => {
  if (sb) {
    await sshRun(sb, "swapoff -a; true");
    await shutdownSandbox(sb);
  }
  timer.done();
});

describe("swapfile step", () => {
  let pristine: Snapshot;

  it("first run creates, activates and registers the swap file (changed)", async () => {
    pristine = await hostSnapshot(sb, OWNED);
    expect(pristine[SWAP]).toEqual({ type: "absent" });
    const r = await create(16);
    expectStep(r, "changed");
    expect(await ourSwap()).toEqual([{ name: SWAP, type: "file", sizeBytes: 16 * 1024 * 1024 - 4096 }]);
    expect(await fstabLinesFor(SWAP)).toEqual([`${SWAP} none swap sw 0 0`]);
    const snap = await hostSnapshot(sb, [SWAP]);
    expect(snap[SWAP]).toMatchObject({ type: "regular file", mode: "600", owner: "root:root", size: 16 * 1024 * 1024 });
  });

  it("second run says unchanged and changes no file it owns", async () => {
    const before = await hostSnapshot(sb, OWNED);
    const r = await create(16);
    expectStep(r, "unchanged");
    expect(diffSnapshots(before, await hostSnapshot(sb, OWNED))).toEqual([]);
  });

  it("a changed size swaps off and recreates; then it is stable again", async () => {
    const r = await create(32);
    expectStep(r, "changed");
    expect(r.stderr).toMatch(/swapoff \/swapfile/);
    expect(await ourSwap()).toEqual([{ name: SWAP, type: "file", sizeBytes: 32 * 1024 * 1024 - 4096 }]);
    expect(await fstabLinesFor(SWAP)).toEqual([`${SWAP} none swap sw 0 0`]);
    const before = await hostSnapshot(sb, OWNED);
    expectStep(await create(32), "unchanged");
    expect(diffSnapshots(before, await hostSnapshot(sb, OWNED))).toEqual([]);
  });

  it("replaces stale and duplicate fstab lines with exactly one", async () => {
    await sshOk(sb, `printf '%s\\n' '${SWAP}  none  swap  defaults 0 0' '${SWAP} none swap sw,pri=5 0 0' >> /etc/fstab`);
    expect(await fstabLinesFor(SWAP)).toHaveLength(3);
    const r = await create(32);
    expectStep(r, "changed");
    expect(await fstabLinesFor(SWAP)).toEqual([`${SWAP} none swap sw 0 0`]);
    expectStep(await create(32), "unchanged");
  });

  it("restores mode 0600 when someone loosened it", async () => {
    await sshOk(sb, `chmod 644 ${SWAP}`);
    const r = await create(32);
    expectStep(r, "changed");
    expect((await hostSnapshot(sb, [SWAP]))[SWAP].mode).toBe("600");
  });

  it("refuses a swap file larger than the free disk, before writing anything", async () => {
    const before = await hostSnapshot(sb, OWNED);
    const swapsBefore = await swapShow(sb);
    const r = await create(100 * 1024 * 1024); // 100 TiB
    expectStepFailure(r, /not enough room for a 104857600 MiB swap file at \/swapfile: \d+ MiB available .* Nothing was changed/);
    expect(diffSnapshots(before, await hostSnapshot(sb, OWNED))).toEqual([]);
    expect(await swapShow(sb)).toEqual(swapsBefore);
    expect((await sshRun(sb, `ls ${SWAP}.pv-new`)).code).not.toBe(0);
  });

  it("counts the margin (PV_SWAP_MIN_FREE_MIB) in the room check", async () => {
    const free = Number((await sshOk(sb, "df -P -m / | awk 'NR==2 {print $4}'")).trim());
    const r = await create(16, { PV_SWAP_MIN_FREE_MIB: String(free + 1024) });
    // 16 MiB fits on its own; with the margin it does not (the 32 MiB file being replaced counts as room).
    expectStepFailure(r, /not enough room/);
    expect(await ourSwap()).toHaveLength(1);
  });

  it("rejects bad inputs with a clear error", async () => {
    for (const [extra, msg] of [
      [{ PV_SWAP_PATH: "swapfile" }, /PV_SWAP_PATH must be an absolute path/],
      [{ PV_SWAP_PATH: "/proc/swapfile" }, /PV_SWAP_PATH must be an absolute path/],
      [{ PV_SWAP_PATH: "/tmp/../swapfile" }, /PV_SWAP_PATH must be an absolute path/],
      [{ PV_SWAP_SIZE_MIB: "1G" }, /PV_SWAP_SIZE_MIB must be a whole number/],
      [{ PV_SWAP_ALLOC: "magic" }, /PV_SWAP_ALLOC must be auto, fallocate or dd/],
    ] as const) {
      const r = await runStep(sb, { step: "swapfile", action: "create", env: { ...env(16), ...extra } });
      expectStepFailure(r, msg);
    }
    const r = await runStep(sb, { step: "swapfile", action: "create", env: { PV_SWAP_PATH: "/etc", PV_SWAP_SIZE_MIB: "16" } });
    expect(r.stderr).toMatch(/exists and is not a regular file/);
    expect(await ourSwap()).toHaveLength(1);
  });

  it("writes with dd when asked (PV_SWAP_ALLOC=dd)", async () => {
    const r = await create(24, { PV_SWAP_ALLOC: "dd" });
    expectStep(r, "changed");
    expect(r.stderr).toMatch(/writing 24 MiB of zeros with dd/);
    expect(await ourSwap()).toEqual([{ name: SWAP, type: "file", sizeBytes: 24 * 1024 * 1024 - 4096 }]);
  });

  it("falls back to dd when fallocate is unsupported or leaves holes", async () => {
    // A fallocate that fails like on a file system without support for it...
    await sshOk(sb, "printf '#!/bin/sh\\necho \"fallocate: Operation not supported\" >&2\\nexit 1\\n' > /usr/local/bin/fallocate && chmod 755 /usr/local/bin/fallocate");
    let r = await create(16);
    expectStep(r, "changed");
    expect(r.stderr).toMatch(/fallocate is not supported here/);
    expect(r.stderr).toMatch(/writing 16 MiB of zeros with dd/);
    expect(await ourSwap()).toEqual([{ name: SWAP, type: "file", sizeBytes: 16 * 1024 * 1024 - 4096 }]);
    // ...and one that "succeeds" but leaves a sparse file.
    await sshOk(sb, "printf '#!/bin/sh\\ntruncate -s \"$2\" \"$4\"\\n' > /usr/local/bin/fallocate && chmod 755 /usr/local/bin/fallocate");
    r = await create(20);
    expectStep(r, "changed");
    expect(r.stderr).toMatch(/fallocate left holes/);
    expect(r.stderr).toMatch(/writing 20 MiB of zeros with dd/);
    expect(await ourSwap()).toEqual([{ name: SWAP, type: "file", sizeBytes: 20 * 1024 * 1024 - 4096 }]);
    await sshOk(sb, "rm -f /usr/local/bin/fallocate");
  });

  it("runs the same under sudo -n", async () => {
    const r = await runStep(sb, { step: "swapfile", action: "create", env: env(20), sudo: true });
    expect(r.command.startsWith("sudo -n env ")).toBe(true);
    expectStep(r, "unchanged");
  });

  it("delete swaps off, removes the file and its fstab line: the host is as before create", async () => {
    const r = await runStep(sb, { step: "swapfile", action: "delete", env: {} });
    expectStep(r, "changed");
    expect(await ourSwap()).toEqual([]);
    expect(contentOf(await hostSnapshot(sb, OWNED))).toEqual(contentOf(pristine));
    const again = await runStep(sb, { step: "swapfile", action: "delete", env: {} });
    expectStep(again, "unchanged");
  });

  it("size 0 means no swap: create removes the swap file it made", async () => {
    expectStep(await create(16), "changed");
    const r = await create(0);
    expectStep(r, "changed");
    expect(await ourSwap()).toEqual([]);
    expect(contentOf(await hostSnapshot(sb, OWNED))).toEqual(contentOf(pristine));
    expectStep(await create(0), "unchanged");
  });

  it("a changed path moves the swap file", async () => {
    expectStep(await create(16), "changed");
    const r = await runStep(sb, { step: "swapfile", action: "create", env: { PV_SWAP_PATH: "/swap.img", PV_SWAP_SIZE_MIB: "16" } });
    expectStep(r, "changed");
    expect((await swapShow(sb)).map((s) => s.name)).toContain("/swap.img");
    expect(await ourSwap()).toEqual([]);
    expect(await fstabLinesFor(SWAP)).toEqual([]);
    expect(await fstabLinesFor("/swap.img")).toEqual(["/swap.img none swap sw 0 0"]);
    expectStep(await runStep(sb, { step: "swapfile", action: "delete", env: {} }), "changed");
    expect((await swapShow(sb)).map((s) => s.name)).not.toContain("/swap.img");
    expect(contentOf(await hostSnapshot(sb, [...OWNED, "/swap.img"]))).toEqual(
      contentOf({ ...pristine, "/swap.img": { type: "absent" } }),
    );
  });

  it("adopts a swap file made by hand and leaves it on delete", async () => {
    await sshOk(sb, `dd if=/dev/zero of=${SWAP} bs=1M count=16 status=none && chmod 600 ${SWAP} && mkswap ${SWAP} >/dev/null`);
    const handMade = await hostSnapshot(sb, OWNED);
    const r = await create(16);
    expectStep(r, "changed");
    expect(r.stderr).not.toMatch(/creating/);
    expect(await ourSwap()).toHaveLength(1);
    expectStep(await create(16), "unchanged");
    const d = await runStep(sb, { step: "swapfile", action: "delete", env: {} });
    expectStep(d, "changed");
    // It was off and had no fstab line before: off again, no line, file kept.
    expect(await ourSwap()).toEqual([]);
    expect(await fstabLinesFor(SWAP)).toEqual([]);
    const after = await hostSnapshot(sb, OWNED);
    expect(after[SWAP]).toMatchObject({ type: "regular file", size: 16 * 1024 * 1024 });
    expect(after["/var/lib/pulumi-vllm"]).toEqual({ type: "absent" });
    expect(after["/etc/fstab"].sha256).toBe(handMade["/etc/fstab"].sha256);
    await sshOk(sb, `rm -f ${SWAP}`);
  });

  it("leaves no swap of this sandbox active", async () => {
    expect(await ourSwap()).toEqual([]);
    const r = await sshRun(sb, "cat /proc/swaps");
    expect(r.code).toBe(0);
    // The kernel's swap list is shared by every sandbox: only this path counts, not /swapfile-<other test>.
    if (r.stdout.split("\n").some((l) => l.split(/\s+/)[0] === SWAP)) throw new Error(describeRun(r));
  });
});
