import { spawnSync } from "child_process";
import * as path from "path";
import { loadStackFile } from "../../components/config/load";
import type { SlurmStackConfig } from "../../components/config/schema";
import { makePlan } from "../../components/plan/plan";

const hpc = () => loadStackFile(path.join(__dirname, "..", "..", "Pulumi.hpc.yaml"));
function script(patch: (c: SlurmStackConfig) => void = () => {}) {
  const loaded = hpc();
  patch(loaded.config as SlurmStackConfig);
  const plan = makePlan(loaded);
  return { plan, text: plan.batchScript! };
}
const bashSyntaxOk = (text: string) => spawnSync("bash", ["-n"], { input: text, encoding: "utf8" });

describe("batch script", () => {
  test("carries every #SBATCH setting of the stack (seed 004's config.yaml keys)", () => {
    const { text } = script();
    for (const o of ["--job-name=pulumi-vllm", "--partition=capella", "--account=p_scads_pathology", "--time=24:00:00", "--nodes=2", "--gpus-per-node=4", "--cpus-per-task=16", "--mem-per-gpu=64G", "--output=/data/horse/ws/alice-vllm/logs/%x-%j.out"]) {
      expect(text).toContain(`#SBATCH ${o}\n`);
    }
    expect(text).toContain("export NCCL_SOCKET_IFNAME=ib0\n");
    expect(text).toContain("export NCCL_IB_TIMEOUT=22\n");
    expect(text).toContain("export HF_HOME=/data/horse/ws/alice-vllm/cache/huggingface\n");
  });
  test.each(["ray", "native"] as const)("%s launcher: valid bash, no secrets, the launch flags for the version", (launcher) => {
    const { plan, text } = script((c) => {
      c.slurm.launcher = launcher;
    });
    expect(bashSyntaxOk(text).status).toBe(0);
    expect(text).not.toMatch(/VLLM_API_KEY=|HF_TOKEN=|--api-key/);
    expect(text).toContain("set -a; . /data/horse/ws/alice-vllm/cache/secrets/pulumi-vllm.env; set +a");
    if (launcher === "native") {
      expect(text).toMatch(/--nnodes 2 --node-rank 0 --master-addr "\$HEAD_IP"/);
      expect(text).toMatch(/--headless; fi' pv-launch \/data\/horse\/ws\/alice-vllm\/venv\/bin\/vllm serve/);
    } else {
      expect(text).toContain("--distributed-executor-backend ray");
      expect(text).toContain("ray start --head");
    }
    expect(plan.fits).toBe(true);
  });
  test("native multi-node on a vLLM without --nnodes fails the plan", () => {
    const { plan } = script((c) => {
      c.slurm.launcher = "native";
      c.vllm.version = "0.10.0";
    });
    expect(plan.problems.join("\n")).toMatch(/slurm.launcher \(native\): --nnodes needs vLLM 0.11.1 or newer/);
  });
  test("modules are loaded and odd values stay one word", () => {
    const { text } = script((c) => {
      c.slurm.modules = ["CUDA/12.4", "release/24 gcc"];
      c.host.env = { WEIRD: "a 'quoted' $value" };
    });
    expect(text).toContain("module load CUDA/12.4\nmodule load 'release/24 gcc'\n");
    expect(text).toContain(`export WEIRD='a '\\''quoted'\\'' $value'`);
    expect(bashSyntaxOk(text).status).toBe(0);
  });
  test("a loopback bind on a compute node is refused", () => {
    const { plan } = script((c) => {
      c.serving.bindHost = "127.0.0.1";
    });
    expect(plan.problems.join("\n")).toMatch(/serving.bindHost: 127.0.0.1 on a compute node cannot be reached .* -> set serving.bindHost: 0.0.0.0/);
  });
  test("one node: vllm serve runs directly, no srun", () => {
    const { text } = script((c) => {
      c.slurm.nodes = 1;
      c.serving.pipelineParallel = 1;
      c.model.id = "openai/gpt-oss-120b";
    });
    expect(text).not.toContain("srun");
    expect(text).toMatch(/\nexec \/data\/horse\/ws\/alice-vllm\/venv\/bin\/vllm serve openai\/gpt-oss-120b /);
  });
});
