import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as yaml from "js-yaml";
import { ConfigError } from "../../components/config/errors";
import { loadStackFile, parseStackConfig } from "../../components/config/load";
import type { SlurmStackConfig } from "../../components/config/schema";
import { makePlan } from "../../components/plan/plan";
import { secretsReader } from "../../components/plan/sbatch";

const hpcFile = path.join(__dirname, "..", "..", "Pulumi.hpc.yaml");
const hpc = () => loadStackFile(hpcFile);
function script(patch: (c: SlurmStackConfig) => void = () => {}) {
  const loaded = hpc();
  patch(loaded.config as SlurmStackConfig);
  const plan = makePlan(loaded);
  return { plan, text: plan.batchScript! };
}
/** The hpc stack's raw values (as the engine would give them), patched before validation. */
function hpcValues(patch: (v: Record<string, any>) => void = () => {}) {
  const doc = yaml.load(fs.readFileSync(hpcFile, "utf8")) as { config: Record<string, unknown> };
  const v: Record<string, any> = {};
  for (const [k, val] of Object.entries(doc.config)) v[k.replace(/^pulumi-vllm:/, "")] = val;
  patch(v);
  return v;
}
function problems(v: Record<string, unknown>): string[] {
  try {
    parseStackConfig(v, "t", new Set(["sshPrivateKey"]));
    return [];
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
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
  test.each(["ray", "native"] as const)("%s launcher: valid bash, no secrets, secrets read as data, the launch flags for the version", (launcher) => {
    const { plan, text } = script((c) => {
      c.slurm.launcher = launcher;
      if (launcher === "ray") c.vllm.version = "0.10.2";
    });
    expect(bashSyntaxOk(text).status).toBe(0);
    expect(text).not.toMatch(/VLLM_API_KEY=|HF_TOKEN=|--api-key/);
    // Never sourced: no `.`/source/eval of the secrets file.
    expect(text).not.toMatch(/(^|[;&|]\s*)(\.|source|eval)\s/m);
    expect(text).toContain("SECRETS_FILE=/data/horse/ws/alice-vllm/cache/secrets/pulumi-vllm.env\n");
    expect(text).toContain('while IFS= read -r line || [[ -n $line ]]; do\n');
    expect(text).toContain('    VLLM_API_KEY) export "$name=$value" ;;\n');
    if (launcher === "native") {
      expect(text).toMatch(/--nnodes 2 --node-rank 0 --master-addr "\$HEAD_IP"/);
      expect(text).toMatch(/--headless; fi' pv-launch \/data\/horse\/ws\/alice-vllm\/venv\/bin\/vllm serve/);
    } else {
      expect(text).toContain("--distributed-executor-backend ray");
      expect(text).toContain("start --head --node-ip-address=\"$RAY_HEAD_IP\" --port=6379 --include-dashboard=false --disable-usage-stats --block' pv-ray-head /data/horse/ws/alice-vllm/venv/bin/ray &\n");
      // bound to the cluster network (nccl.socketIfname ib0), token auth on
      expect(text).toContain("ip -4 -o addr show dev ib0");
      expect(text).toContain("RAY_AUTH_MODE=token\n");
      expect(text).toContain('--node-ip-address="$VLLM_HOST_IP"');
      expect(plan.warnings.join("\n")).toMatch(/slurm.launcher: ray .* only Ray 2.52 and newer enforce/);
    }
    expect(plan.fits).toBe(true);
  });
  test("the launcher defaults to native where vLLM has it (0.11.1+), else ray", () => {
    expect((parseStackConfig(hpcValues(), "t").config as SlurmStackConfig).slurm.launcher).toBe("native");
    const old = parseStackConfig(hpcValues((v) => (v.vllm.version = "0.11.0")), "t").config as SlurmStackConfig;
    expect(old.slurm.launcher).toBe("ray");
  });
  test("ray on a vLLM with the native launcher is refused with the fix", () => {
    const p = problems(hpcValues((v) => (v.slurm.launcher = "ray")));
    expect(p).toEqual([expect.stringMatching(/^slurm.launcher: ray starts an unauthenticated Ray cluster .* -> remove slurm.launcher \(native is the default from vLLM 0.11.1\) or set it to native$/)]);
  });
  test("native multi-node on a vLLM without --nnodes fails the plan", () => {
    const { plan } = script((c) => {
      c.slurm.launcher = "native";
      c.vllm.version = "0.10.0";
    });
    expect(plan.problems.join("\n")).toMatch(/slurm.launcher \(native\): --nnodes needs vLLM 0.11.1 or newer/);
  });
  test("modules are loaded one per entry; a module with a space is refused; odd env values stay one word", () => {
    const { text } = script((c) => {
      c.slurm.modules = ["CUDA/12.4", "release/24"];
      c.host.env = { WEIRD: "a 'quoted' $value" };
    });
    expect(text).toContain("module load CUDA/12.4\nmodule load release/24\n");
    expect(text).toContain(`export WEIRD='a '\\''quoted'\\'' $value'`);
    expect(bashSyntaxOk(text).status).toBe(0);
    expect(problems(hpcValues((v) => (v.slurm.modules = ["release/24 gcc"])))).toEqual([
      expect.stringMatching(/^slurm.modules.0: may hold only .* not a space -> remove it$/),
    ]);
  });
  test("a world-writable secretsDir and sbatch options the config sets are refused", () => {
    expect(problems(hpcValues((v) => (v.slurm.secretsDir = "/tmp/alice")))).toEqual([expect.stringMatching(/^slurm.secretsDir: is in a directory every user may write to.* -> /)]);
    expect(problems(hpcValues((v) => (v.slurm.secretsDir = "secrets")))).toEqual([expect.stringMatching(/^slurm.secretsDir: is not an absolute path -> /)]);
    expect(problems(hpcValues((v) => (v.slurm.extraSbatch = ["--output=/tmp/x"])))).toEqual([expect.stringMatching(/^slurm.extraSbatch.0: is set from slurm.logDir -> set that key instead$/)]);
    expect(problems(hpcValues((v) => (v.slurm.extraSbatch = ["--constraint=a100&ib", "--exclusive"])))).toEqual([]);
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

describe("the secrets file is read as data (the job's own bash, for real)", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pv-secrets-"));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const marker = path.join(tmp, "ran");

  /** Run the reader lines on `content`, then print the exported variables. */
  function readSecrets(content: string, opts: { fileMode?: number; dirMode?: number; symlink?: boolean } = {}) {
    const dir = fs.mkdtempSync(path.join(tmp, "d-"));
    fs.chmodSync(dir, opts.dirMode ?? 0o700);
    let file = path.join(dir, "job.env");
    fs.writeFileSync(file, content, { mode: opts.fileMode ?? 0o600 });
    fs.chmodSync(file, opts.fileMode ?? 0o600);
    if (opts.symlink) {
      const link = path.join(dir, "link.env");
      fs.symlinkSync(file, link);
      file = link;
    }
    const body = [
      "set -euo pipefail",
      ...secretsReader(file, ["VLLM_API_KEY", "HF_TOKEN"]),
      'printf "key=[%s]\\n" "$VLLM_API_KEY"',
      'printf "hf=[%s]\\n" "${HF_TOKEN-unset}"',
      'printf "evil=[%s]\\n" "${EVIL-unset}"',
      'printf "path=[%s]\\n" "$PATH"',
    ].join("\n");
    return spawnSync("bash", ["-c", body], { encoding: "utf8", env: { PATH: process.env.PATH!, HOME: tmp } });
  }

  test("a value holding $(...), backticks, quotes, $VAR and spaces arrives verbatim and runs nothing", () => {
    const hostile = `$(touch ${marker}) \`touch ${marker}\` 'q' "d" $HOME ; x=y`;
    const r = readSecrets(`VLLM_API_KEY=${hostile}\nHF_TOKEN=hf_a=b\n`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain(`key=[${hostile}]\n`);
    expect(r.stdout).toContain("hf=[hf_a=b]\n");
    expect(fs.existsSync(marker)).toBe(false);
  });
  test("only the names the launch expects are exported (PATH and others in the file are ignored)", () => {
    const r = readSecrets(`EVIL=1\nPATH=/nowhere\nVLLM_API_KEY=k`);
    expect(r.stdout).toContain("key=[k]\n");
    expect(r.stdout).toContain("evil=[unset]\n");
    expect(r.stdout).not.toContain("path=[/nowhere]");
    expect(r.stdout).toContain("hf=[unset]\n");
  });
  test.each([
    ["a file others can read", { fileMode: 0o644 }, /must be a regular file of .* with mode 0600/],
    ["a symlink", { symlink: true }, /must be a regular file/],
    ["a directory others can write", { dirMode: 0o777 }, /must be a directory of .* that no one else may write to/],
  ])("%s is refused, and nothing is read", (_what, opts, message) => {
    const r = readSecrets("VLLM_API_KEY=k\n", opts);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).not.toContain("key=[k]");
  });
});
