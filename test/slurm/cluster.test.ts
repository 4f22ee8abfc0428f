// The SLURM test cluster itself works like a real one: two idle nodes, a
// two-node GPU job runs a step on both, a time limit ends a job TIMEOUT, an
// unknown partition is refused with SLURM's own error, scancel leaves nothing
// in the queue. (The SLURM topology's tests build on these facts.)
import * as fs from "fs";
import * as path from "path";
import {
  SlurmCluster,
  bootCluster,
  jobState,
  loginOk,
  loginRun,
  reapOrphanClusters,
  sacctState,
  sbatch,
  shutdownCluster,
  timer,
  waitJobState,
} from "./cluster";

// One name per run, so two runs on one machine (a developer's and CI's) do not
// stop each other's cluster; orphans of interrupted runs are reaped first.
const PREFIX = "pvslt";
const NAME = process.env.PV_SLURM_TEST_CLUSTER ?? `${PREFIX}${process.pid}`;
jest.setTimeout(300_000);

describe("SLURM test cluster (slurm-wlm in three nspawn containers)", () => {
  let c: SlurmCluster;
  let timeoutJob: string;
  let timeoutSubmitted = 0;
  const t = timer("cluster.test.ts");
  const timed = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await f();
    } finally {
      t.add(what, Date.now() - t0);
    }
  };

  beforeAll(async () => {
    const reaped = await reapOrphanClusters(PREFIX);
    if (reaped.length) process.stderr.write(`[slurm] stopped orphan clusters of interrupted runs: ${reaped.join(", ")}\n`);
    c = await bootCluster(NAME);
    // "cold" when the slurm layer (and maybe the base root) had to be built.
    t.add(`boot (${c.layerMs > 5000 ? "cold" : "warm"}, layer ${(c.layerMs / 1000).toFixed(1)}s)`, c.bootMs);
    await loginOk(c, "mkdir -p /shared/cluster-test");
    // The time-limit job runs alongside the other tests (a --time=1 job needs
    // 60-100 s to be timed out); it is checked last.
    timeoutJob = await sbatch(c, "#!/bin/bash\nsleep 600\n", [
      "--job-name=pv-timeout", "--time=1", "--nodes=1", "--output=/shared/cluster-test/timeout-%j.out",
    ]);
    timeoutSubmitted = Date.now();
  }, 1_800_000);

  afterAll(async () => {
    if (c) await timed("shutdown", () => shutdownCluster(c));
    t.done();
  }, 240_000);

  test("sinfo shows the two compute nodes idle in the default gpu partition", async () => {
    const out = await timed("sinfo", () => loginOk(c, "sinfo -h -N -o '%N %P %t %G'"));
    const rows = out.trim().split("\n").map((l) => l.trim().split(/\s+/));
    const names = c.nodes.map((n) => n.hostname).sort();
    expect(rows.map((r) => r[0]).sort()).toEqual(names);
    for (const [, part, , gres] of rows) {
      expect(part).toBe("gpu*");
      expect(gres).toBe("gpu:4");
    }
    // The time-limit job may hold a core of one node (mixed): none is down.
    for (const r of rows) expect(["idle", "mix", "alloc"]).toContain(r[2]);
    expect(rows.filter((r) => r[2] === "idle").length).toBeGreaterThanOrEqual(1);
  });

  test("a 2-node job with 4 GPUs per node runs `srun hostname` on both nodes; output lands on /shared", async () => {
    await timed("2-node job", async () => {
      const script = [
        "#!/bin/bash",
        "#SBATCH --job-name=pv-hostname",
        `#SBATCH --account=${c.account}`,
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --time=2",
        "#SBATCH --output=/shared/cluster-test/hostname-%j.out",
        "srun hostname",
        `srun bash -c 'echo "task=$SLURM_PROCID host=$(hostname) gpus=$CUDA_VISIBLE_DEVICES"'`,
        "",
      ].join("\n");
      const id = await sbatch(c, script);
      expect(await waitJobState(c, id, ["COMPLETED"], { timeoutMs: 120_000 })).toBe("COMPLETED");
      const out = await loginOk(c, `cat /shared/cluster-test/hostname-${id}.out`);
      const hosts = out.split("\n").filter((l) => /^\S+$/.test(l)).sort();
      expect(hosts).toEqual(c.nodes.map((n) => n.hostname).sort());
      for (const n of c.nodes) expect(out).toContain(`host=${n.hostname} gpus=0,1,2,3`);
      // The same file through this machine's side of the shared dir.
      expect(fs.readFileSync(path.join(c.sharedHostDir, "cluster-test", `hostname-${id}.out`), "utf8")).toBe(out);
      const alloc = await loginOk(c, `sacct -X -n -P -j ${id} -o NNodes,AllocTRES`);
      expect(alloc).toMatch(/^2\|.*gres\/gpu=8/);
    });
  });

  test("sbatch to a partition that does not exist fails with SLURM's invalid partition error", async () => {
    const r = await timed("bad partition", () => loginRun(c, "sbatch -p nosuchpartition --wrap=true"));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("invalid partition specified: nosuchpartition");
    expect(r.stderr).toContain("Batch job submission failed: Invalid partition name specified");
  });

  test("an unknown account is refused (accounting enforces associations)", async () => {
    const r = await timed("bad account", () => loginRun(c, "sbatch --account=nosuchaccount --wrap=true"));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("Invalid account or account/partition combination specified");
  });

  test("scancel of a running job leaves nothing in squeue; sacct says CANCELLED", async () => {
    await timed("scancel", async () => {
      const id = await sbatch(c, "#!/bin/bash\nsleep 600\n", ["--job-name=pv-cancel", "--time=5", "--output=/dev/null"]);
      expect(await waitJobState(c, id, ["RUNNING"], { timeoutMs: 60_000 })).toBe("RUNNING");
      await loginOk(c, `scancel ${id}`);
      const deadline = Date.now() + 60_000;
      let q = "";
      for (;;) {
        q = await loginOk(c, "squeue -h -o '%i %T'");
        if (!q.split("\n").some((l) => l.split(" ")[0] === id) || Date.now() > deadline) break;
        await new Promise((res) => setTimeout(res, 500));
      }
      expect(q.split("\n").filter((l) => l.split(" ")[0] === id)).toEqual([]);
      expect(await jobState(c, id)).toBe("CANCELLED");
      let acct: string | null = null;
      for (let i = 0; i < 30 && acct !== "CANCELLED"; i++) {
        acct = await sacctState(c, id);
        if (acct !== "CANCELLED") await new Promise((res) => setTimeout(res, 1000));
      }
      expect(acct).toBe("CANCELLED");
    });
  });

  test("a job that outlives its --time=1 limit ends TIMEOUT (scontrol and sacct)", async () => {
    await timed("time limit (waited)", async () => {
      const state = await waitJobState(c, timeoutJob, ["TIMEOUT"], { timeoutMs: 200_000, pollMs: 2000 });
      expect(state).toBe("TIMEOUT");
      let acct: string | null = null;
      for (let i = 0; i < 30 && acct !== "TIMEOUT"; i++) {
        acct = await sacctState(c, timeoutJob);
        if (acct !== "TIMEOUT") await new Promise((res) => setTimeout(res, 1000));
      }
      expect(acct).toBe("TIMEOUT");
      const log = await loginOk(c, `cat /shared/cluster-test/timeout-${timeoutJob}.out`);
      expect(log).toMatch(/DUE TO TIME LIMIT/);
      process.stderr.write(`[slurm-timing] timeout job ended ${((Date.now() - timeoutSubmitted) / 1000).toFixed(0)}s after submission\n`);
    });
  });
});
