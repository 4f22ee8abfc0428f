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
// Secrets are read from a 0600 file of the job's user on the shared
// filesystem, as data: NAME=value lines parsed with `read`, only the names the
// launch expects exported. The file is never sourced (a value holding `$(...)`
// stays text), and the script itself holds no secret.
//
// No config value can become a line of the script: the schema refuses line
// breaks and shell characters in every value that reaches it, and each value
// is rendered inertly here as well (shell words single-quoted, comment text
// escaped). The checks below are invariants: a validated config never
// trips them (test/unit/hostile-input.test.ts).
import type { SlurmStackConfig } from "../config/schema";
import { Launch, shellQuote as q } from "./launch";

/** A value that reached the batch renderer in a form the schema should have refused: a bug, not a config problem. */
export class BatchRenderInvariant extends Error {}


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

/** Printable ASCII only, for text inside a comment line (anything else shown as \\uXXXX). */
function commentText(s: string): string {
  return s.replace(/[^\x20-\x7E]/g, (ch) => "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0"));
}

/** An #SBATCH option: sbatch splits these lines on whitespace and knows no shell quoting. */
function sbatchOption(o: string): string {
  if (!/^--[a-z][a-z-]*=[^\s'"`$\\;]+$/.test(o) && !/^--[a-z][a-z-]*$/.test(o)) throw new BatchRenderInvariant(`#SBATCH option not inert: ${JSON.stringify(o)}`);
  return `#SBATCH ${o}`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function envName(name: string): string {
  if (!ENV_NAME.test(name)) throw new BatchRenderInvariant(`not an environment name: ${JSON.stringify(name)}`);
  return name;
}

/**
 * Lines that read the secrets file as data. The file must be a regular file
 * (not a symlink) owned by the job's user with mode 0600, in a directory
 * owned by that user that no one else may write to; then each NAME=value
 * line whose NAME the launch expects is exported, byte for byte.
 */
export function secretsReader(secretsFile: string, names: string[]): string[] {
  if (names.length === 0) return [];
  const allowed = names.map(envName).join("|");
  return [
    "# Secrets come from a 0600 file of this job's user on the shared filesystem, read as data (never sourced).",
    `SECRETS_FILE=${q(secretsFile)}`,
    'SECRETS_DIR=$(dirname -- "$SECRETS_FILE")',
    'if [[ ! -f $SECRETS_FILE || -L $SECRETS_FILE || ! -O $SECRETS_FILE || $(stat -c %a -- "$SECRETS_FILE") != 600 ]]; then',
    '  echo "pulumi-vllm: $SECRETS_FILE must be a regular file of $(id -un) with mode 0600; not reading it" >&2; exit 1',
    "fi",
    'if [[ -L $SECRETS_DIR || ! -O $SECRETS_DIR ]] || (( 8#$(stat -c %a -- "$SECRETS_DIR") & 8#022 )); then',
    '  echo "pulumi-vllm: $SECRETS_DIR must be a directory of $(id -un) that no one else may write to; not reading secrets from it" >&2; exit 1',
    "fi",
    'while IFS= read -r line || [[ -n $line ]]; do',
    '  name=${line%%=*} value=${line#*=}',
    "  case $name in",
    `    ${allowed}) export "$name=$value" ;;`,
    "  esac",
    'done <"$SECRETS_FILE"',
    "unset line name value",
  ];
}

/** The interface of the cluster network for Ray, when nccl.socketIfname names exactly one. */
function clusterInterface(c: SlurmStackConfig): string | undefined {
  const i = c.nccl.socketIfname;
  return i && /^[A-Za-z0-9_.:-]+$/.test(i) ? i : undefined;
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
    ...sb.map(sbatchOption),
    `# Rendered by pulumi-vllm for vLLM ${commentText(c.vllm.version)} serving ${commentText(launch.servedModelName)}.`,
    "# Do not edit on the cluster: `pulumi up` renders, submits and replaces it.",
    "set -euo pipefail",
  ];
  for (const m of s.modules) lines.push(`module load ${q(m)}`);
  for (const [k, v] of Object.entries(launch.env)) lines.push(`export ${envName(k)}=${q(v)}`);
  lines.push(
    ...secretsReader(secretsFile, launch.secretEnv),
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
    // Only for vLLM releases without the native launcher (the schema refuses ray otherwise).
    const ray = q(`${c.slurm.sharedVenvPath}/bin/ray`);
    const ifname = clusterInterface(c);
    lines.push(
      "# Ray head here, Ray workers on the other nodes, then vLLM on the head. Ray binds to the cluster",
      "# network (nccl.socketIfname), runs no dashboard, and requires a per-job random token (RAY_AUTH_MODE,",
      "# Ray 2.52+; older Ray ignores it and is open to every user who can reach its ports).",
      "node_ip() { # this node's IPv4 address on the cluster network, else its host name's",
      "  local ip=''",
      ...(ifname ? [`  ip=$(ip -4 -o addr show dev ${q(ifname)} 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }') || ip=''`] : []),
      `  [ -n "$ip" ] || ip=$(getent ahostsv4 "$(hostname)" | awk 'NR == 1 { print $1 }')`,
      '  printf \'%s\\n\' "$ip"',
      "}",
      "export -f node_ip",
      "RAY_HEAD_IP=$(node_ip)",
      "RAY_AUTH_MODE=token",
      "RAY_AUTH_TOKEN=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \\n')",
      "export RAY_HEAD_IP RAY_AUTH_MODE RAY_AUTH_TOKEN",
      `srun --nodes=1 --ntasks=1 -w "$HEAD_NODE" bash -c 'VLLM_HOST_IP="$RAY_HEAD_IP" exec "$1" start --head --node-ip-address="$RAY_HEAD_IP" --port=${s.rayPort} --include-dashboard=false --disable-usage-stats --block' pv-ray-head ${ray} &`,
      `for _ in $(seq 60); do ${ray} status --address="$RAY_HEAD_IP:${s.rayPort}" >/dev/null 2>&1 && break; sleep 5; done`,
      `srun --nodes=${s.nodes - 1} --ntasks=${s.nodes - 1} --ntasks-per-node=1 --exclude="$HEAD_NODE" bash -c 'export VLLM_HOST_IP=$(node_ip); exec "$1" start --address="$RAY_HEAD_IP:${s.rayPort}" --node-ip-address="$VLLM_HOST_IP" --disable-usage-stats --block' pv-ray-worker ${ray} &`,
      `export VLLM_HOST_IP="$RAY_HEAD_IP"`,
      `${argv} --distributed-executor-backend ray`,
    );
  }
  return lines.join("\n") + "\n";
}
