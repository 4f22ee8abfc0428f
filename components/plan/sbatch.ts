// The SLURM batch script of a `topology: slurm` stack. Pure: the same text
// is printed by `pulumi-vllm plan --stack hpc`, shown as a diff by
// `pulumi preview`, and submitted by the slurm-job host step.
//
// Multi-node launch, as vLLM documents it (../shared/VLLM-FACTS.md "Multi-node"):
// - native (vLLM with --nnodes): every node runs `vllm serve` with the same
//   arguments plus --nnodes N --node-rank R --master-addr HEAD; workers add
//   --headless. One `srun` starts them all, one task per node.
// - ray: a Ray head on the first node, Ray workers on the others (srun), then
//   `vllm serve ... --distributed-executor-backend ray` on the head, with
//   VLLM_HOST_IP set per node (docs' run_cluster.sh / multi-node-serving.sh).
// Secrets are sourced from a 0600 file on the shared filesystem; the script
// itself holds none.
import type { SlurmStackConfig } from "../config/schema";
import { Launch, shellQuote as q } from "./launch";

export interface BatchInput {
  config: SlurmStackConfig;
  launch: Launch;
  /** 0600 file with VLLM_API_KEY / HF_TOKEN lines, on the shared filesystem. */
  secretsFile: string;
}


export function secretsFileOf(c: SlurmStackConfig): string {
  return `${c.slurm.secretsDir ?? `${c.slurm.sharedCacheDir}/secrets`}/${c.slurm.jobName}.env`;
}

/** The flags the launcher adds to `vllm serve` (also checked against the pinned version). */
export function launcherFlags(c: SlurmStackConfig): string[] {
  if (c.slurm.nodes === 1) return [];
  return c.slurm.launcher === "native" ? ["--nnodes", "--node-rank", "--master-addr"] : ["--distributed-executor-backend"];
}

export function renderBatchScript({ config: c, launch, secretsFile }: BatchInput): string {
  const s = c.slurm;
  const sb: string[] = [
    `--job-name=${s.jobName}`,
    `--partition=${s.partition}`,
    ...(s.account ? [`--account=${s.account}`] : []),
    ...(s.qos ? [`--qos=${s.qos}`] : []),
    `--time=${s.timeLimit}`,
    `--nodes=${s.nodes}`,
    "--ntasks-per-node=1",
    `--gpus-per-node=${s.gpusPerNode}`,
    `--cpus-per-task=${s.cpusPerTask}`,
    ...(s.memPerGpu ? [`--mem-per-gpu=${s.memPerGpu}`] : []),
    `--output=${s.logDir}/%x-%j.out`,
    `--error=${s.logDir}/%x-%j.out`,
    ...s.extraSbatch,
  ];
  const lines: string[] = [
    "#!/bin/bash",
    ...sb.map((o) => `#SBATCH ${o}`),
    `# Rendered by pulumi-vllm for vLLM ${c.vllm.version} serving ${launch.servedModelName}.`,
    "# Do not edit on the cluster: `pulumi up` renders, submits and replaces it.",
    "set -euo pipefail",
  ];
  for (const m of s.modules) lines.push(`module load ${q(m)}`);
  for (const [k, v] of Object.entries(launch.env)) lines.push(`export ${k}=${q(v)}`);
  lines.push(
    "# Secrets (API key, HF token) come from a 0600 file on the shared filesystem, never from this script.",
    `set -a; . ${q(secretsFile)}; set +a`,
    'HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
    'HEAD_IP=$(getent ahostsv4 "$HEAD_NODE" | awk \'NR == 1 { print $1 }\')',
    "export HEAD_NODE HEAD_IP",
    `echo "pulumi-vllm: job $SLURM_JOB_ID head node $HEAD_NODE ($HEAD_IP) port ${c.serving.port}"`,
  );
  const argv = launch.argv.map(q).join(" ");
  if (s.nodes === 1) {
    lines.push(`exec ${argv}`);
  } else if (s.launcher === "native") {
    lines.push(
      "# One task per node: rank 0 serves the API, the others run headless workers.",
      `srun --nodes=${s.nodes} --ntasks=${s.nodes} --ntasks-per-node=1 --kill-on-bad-exit=1 bash -c '`,
      `  export VLLM_HOST_IP=$(getent ahostsv4 "$(hostname)" | awk '"'"'NR == 1 { print $1 }'"'"')`,
      `  if [ "$SLURM_NODEID" = 0 ]; then exec "$@" --nnodes ${s.nodes} --node-rank 0 --master-addr "$HEAD_IP"`,
      `  else exec "$@" --nnodes ${s.nodes} --node-rank "$SLURM_NODEID" --master-addr "$HEAD_IP" --headless; fi' pv-launch ${argv}`,
    );
  } else {
    const ray = `${c.slurm.sharedVenvPath}/bin/ray`;
    lines.push(
      "# Ray head here, Ray workers on the other nodes, then vLLM on the head.",
      `srun --nodes=1 --ntasks=1 -w "$HEAD_NODE" bash -c 'VLLM_HOST_IP="$HEAD_IP" exec ${ray} start --head --node-ip-address="$HEAD_IP" --port=${s.rayPort} --block' &`,
      `for _ in $(seq 60); do ${ray} status --address="$HEAD_IP:${s.rayPort}" >/dev/null 2>&1 && break; sleep 5; done`,
      `srun --nodes=${s.nodes - 1} --ntasks=${s.nodes - 1} --ntasks-per-node=1 --exclude="$HEAD_NODE" bash -c 'export VLLM_HOST_IP=$(getent ahostsv4 "$(hostname)" | awk '"'"'NR == 1 { print $1 }'"'"'); exec ${ray} start --address="$HEAD_IP:${s.rayPort}" --block' &`,
      `export VLLM_HOST_IP="$HEAD_IP"`,
      `${argv} --distributed-executor-backend ray`,
    );
  }
  return lines.join("\n") + "\n";
}
