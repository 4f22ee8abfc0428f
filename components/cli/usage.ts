// The usage text of status, logs and smoke (kept apart so that --help loads nothing else).
const COMMON = `  --stack <name>   the stack (required); --dir <project dir>: where pulumi runs (default: here)
  --server <name>  one server of the stack (default: every VllmServer / VllmSlurmServer in it)`;

export const COMMAND_USAGE = {
  status: `usage: pulumi-vllm status --stack <name> [--dir <dir>] [--server <name>] [--json] [--repair [--yes]]

Checks each host step against what the stack says it made: packages, swap (active, one fstab line),
earlyoom (its config and the arguments it runs with), uv and the venv, the pinned vLLM in it, the unit
file and env file as rendered (sha256) and the unit active, /health and /v1/models; shows GPU memory per
card (nvidia-smi) and vLLM's running/waiting requests and KV-cache use. SLURM: the job's state, node,
age and time left, and the head node's health.
${COMMON}
  --json           machine-readable
  --repair         run the printed repair (pulumi up --replace of the drifted steps); asks first
  --yes            with --repair: do not ask (CI)
Exit codes: 0 all ok, 3 drift (the repair command is printed), 1 error (a step could not be checked).`,
  logs: `usage: pulumi-vllm logs --stack <name> [--dir <dir>] [--server <name>] [-f] [--since 10m] [-n N]

The server's journal (journalctl -u <unit>) or, on SLURM, the job's log file; every secret the stack
gave the server is shown as [REDACTED].
${COMMON}
  -f, --follow     keep printing new lines
  --since <time>   10m, 2h, 1d or "2026-12-01 10:00" (not on SLURM)
  -n, --lines <N>  the last N lines (default 100)
Exit codes: 0, 1 error.`,
  smoke: `usage: pulumi-vllm smoke --stack <name> [--dir <dir>] [--server <name>] [--endpoint <url>] [--no-tunnel] [--json]

Lists the models, sends one chat completion and one tool call (when a tool parser is set), through an
ssh -L tunnel over the stack's connection when the server is bound to 127.0.0.1 or is a SLURM job.
${COMMON}
  --endpoint <url> use this base URL (http://host:port/v1) instead; no tunnel
  --no-tunnel      call the stack's endpoint directly
Exit codes: 0 all passed, 1 a check failed or error.`,
};
