// `pulumi-vllm logs`: the server's journal (one host) or the job's log file
// (SLURM), with every secret the stack gave the server replaced by
// [REDACTED] before a line is printed.
import { shellQuote } from "../host/remote-command";
import { connectionOfServer, OpsError, secretValues, ServerRecord, stepOf } from "./state";

/** Replaces the given secret values, and anything shaped like a Hugging Face token or a bearer header, in a line. */
export function redactor(secrets: string[]): (line: string) => string {
  const sorted = [...secrets].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
  return (line) => {
    let out = line;
    for (const s of sorted) out = out.split(s).join("[REDACTED]");
    return out.replace(/\bhf_[A-Za-z0-9]{20,}/g, "[REDACTED]").replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}/gi, "$1[REDACTED]");
  };
}

export interface LogsOptions {
  follow?: boolean;
  since?: string;
  lines?: number;
}

/** The remote command that prints the server's log. */
export function logsCommand(s: ServerRecord, o: LogsOptions): string {
  const n = o.lines ?? 100;
  if (s.topology === "slurm") {
    const job = stepOf(s, "slurm-job");
    if (!job) throw new OpsError(`server ${s.name} has no slurm-job step in the state -> run pulumi up first`);
    if (o.since) throw new OpsError("--since: a SLURM job's log is a file without timestamps -> use -n instead");
    const file = `${job.params.PV_LOG_DIR}/${job.params.PV_JOB_NAME}-${s.outputs.jobId}.out`;
    return `tail -n ${n}${o.follow ? " -F" : ""} -- ${shellQuote(file)}`;
  }
  const unit = stepOf(s, "launch-unit");
  if (!unit) throw new OpsError(`server ${s.name} has no launch-unit step in the state -> run pulumi up first`);
  const { sudo } = connectionOfServer(s);
  const args = ["journalctl", "-u", unit.params.PV_UNIT_NAME, "--no-pager", "-o", "short-iso", "-n", String(n), ...(o.since ? ["--since", o.since.replace(/^(\d+)([smhd])$/, "-$1$2")] : []), ...(o.follow ? ["-f"] : [])];
  return `${sudo ? "sudo -n " : ""}${args.map(shellQuote).join(" ")}`;
}

/** A `--since` value journalctl reads: `10m`, `2h`, `1d` (ago), or its own forms (`2026-12-01 10:00`, `yesterday`). */
export function sinceProblem(v: string): string | undefined {
  if (/^\d+[smhd]$/.test(v) || /^[0-9: -]{4,19}$/.test(v) || /^(today|yesterday|now)$/.test(v)) return undefined;
  return `--since ${JSON.stringify(v)}: not a time -> give 10m, 2h, 1d or "2026-12-01 10:00"`;
}

export { secretValues };
