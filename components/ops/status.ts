// `pulumi-vllm status`: each host step checked against what the stack says
// it made. One SSH session runs a read-only probe (probeScript) that prints
// `key=value` facts; evaluate() compares them with the steps' parameters from
// the state, purely. A step is ok, drifted (the host differs: what differs is
// said) or failed (it could not be checked); the repair is the `pulumi up
// --replace` of the drifted steps' commands, which undoes and redoes them.
import { createHash } from "crypto";
import { shellQuote } from "../host/remote-command";
import { ServerRecord, StepRecord, stepOf } from "./state";

export type StepState = "ok" | "drifted" | "failed" | "skipped";

export interface StepStatus {
  step: string;
  state: StepState;
  /** What was found (ok) or what differs (drifted) or why it could not be checked (failed). */
  details: string[];
  urn?: string;
}

export interface ServerStatus {
  server: string;
  topology: "single" | "slurm";
  target: string;
  steps: StepStatus[];
  /** Key vLLM metrics from /metrics (running/waiting requests, KV-cache usage), when it answered. */
  metrics: Record<string, number>;
  /** nvidia-smi per card: "index, name, used MiB, total MiB". */
  gpus: string[];
  /** SLURM: job state, node, elapsed, time left. */
  job?: { id: string; state: string; node: string; elapsed: string; timeLeft: string };
  /** URNs whose replacement re-converges what drifted. */
  replace: string[];
}

/** A fact map: `key=value` lines (later lines win). */
export function parseFacts(out: string): Record<string, string> {
  const f: Record<string, string> = {};
  for (const line of out.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) f[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return f;
}

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest("hex");

/** systemd EnvironmentFile quoting as launch-unit.sh's env_quote. */
function envQuote(v: string): string {
  return `"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/`/g, "\\`").replace(/\$/g, "\\$")}"`;
}

/** The env file launch-unit.sh writes for these secrets (what its hash must be). */
export function renderedEnvFile(unit: string, secrets: Record<string, string>): string {
  const lines = [`# Managed by pulumi-vllm (launch-unit.sh) for ${unit}. Root-only secrets; do not edit.`];
  for (const name of Object.keys(secrets).sort()) lines.push(`${name}=${envQuote(secrets[name])}`);
  return lines.join("\n") + "\n";
}

/** EARLYOOM_ARGS as earlyoom.sh writes it, and the argv earlyoom must run with. */
export function earlyoomArgs(p: Record<string, string>): { line: string; argv: string[] } {
  const report = p.PV_EARLYOOM_REPORT_SECONDS ?? "3600";
  const argv = ["-m", p.PV_EARLYOOM_MEM_PERCENT, "-s", p.PV_EARLYOOM_SWAP_PERCENT, "-r", report];
  let line = `-m ${p.PV_EARLYOOM_MEM_PERCENT} -s ${p.PV_EARLYOOM_SWAP_PERCENT} -r ${report}`;
  if (p.PV_EARLYOOM_AVOID) {
    argv.push("--avoid", p.PV_EARLYOOM_AVOID);
    line += ` --avoid '${p.PV_EARLYOOM_AVOID}'`;
  }
  if (p.PV_EARLYOOM_PREFER) {
    argv.push("--prefer", p.PV_EARLYOOM_PREFER);
    line += ` --prefer '${p.PV_EARLYOOM_PREFER}'`;
  }
  return { line: `EARLYOOM_ARGS="${line}"`, argv };
}

const vars = (prefix: string, p: Record<string, string>) =>
  Object.entries(p)
    .map(([k, v]) => `${prefix}${k}=${shellQuote(v)}`)
    .join("\n");

/** The API key the server wants (from the launch step's stdin, or the server's output). */
export function apiKeyOf(s: ServerRecord): string | undefined {
  for (const st of s.steps) if (st.secrets.VLLM_API_KEY) return st.secrets.VLLM_API_KEY;
  return typeof s.outputs.apiKey === "string" ? s.outputs.apiKey : undefined;
}

/** The base URL (no /v1) the server answers on, as seen from the host the probe runs on. */
export function probeBaseUrl(s: ServerRecord): string | undefined {
  const gate = stepOf(s, "readiness");
  if (gate?.params.PV_BASE_URL) return gate.params.PV_BASE_URL;
  const ep = typeof s.outputs.endpoint === "string" ? s.outputs.endpoint : undefined;
  return ep?.replace(/\/v1\/?$/, "");
}

/**
 * The probe: bash, read from stdin by `bash -s` on the host (so the API key
 * it sends to /v1/models is in no argv); it changes nothing and prints facts.
 */
export function probeScript(s: ServerRecord): string {
  const parts: string[] = [
    "set -u; export LC_ALL=C",
    `q() { printf '%s=%s\\n' "$1" "$(printf '%s' "$2" | tr '\\n\\r' '  ')"; }`,
  ];
  const add = (st: StepRecord | undefined, body: string) => {
    if (st) parts.push(vars(`S_`, st.params), body);
  };
  add(stepOf(s, "toolchain"), 'm=; for p in $S_PV_PACKAGES; do st=$(dpkg-query -W -f=\'${db:Status-Abbrev}\' "$p" 2>/dev/null); [[ $st == ii* ]] || m="$m $p"; done; q toolchain.missing "$m"');
  add(
    stepOf(s, "swapfile"),
    String.raw`q swapfile.active "$(swapon --show=NAME --noheadings --raw 2>/dev/null | grep -cxF -- "$S_PV_SWAP_PATH")"
q swapfile.fstab "$(awk -v p="$S_PV_SWAP_PATH" '$1 == p' /etc/fstab | wc -l)"
q swapfile.bytes "$(stat -c %s -- "$S_PV_SWAP_PATH" 2>/dev/null || echo absent)"`,
  );
  add(
    stepOf(s, "earlyoom"),
    String.raw`q earlyoom.active "$(systemctl is-active earlyoom.service 2>/dev/null)"
q earlyoom.conf "$(grep '^EARLYOOM_ARGS=' /etc/default/earlyoom 2>/dev/null)"
q earlyoom.conf_lines "$(grep -c '^EARLYOOM_ARGS=' /etc/default/earlyoom 2>/dev/null)"
pid=$(systemctl show -p MainPID --value earlyoom.service 2>/dev/null)
[[ -n $pid && $pid != 0 ]] && q earlyoom.argv "$(tr '\0' '\037' < /proc/$pid/cmdline 2>/dev/null)"`,
  );
  add(
    stepOf(s, "uv-venv"),
    String.raw`q uv-venv.uv "$("$S_PV_UV_DIR/$S_PV_UV_VERSION/uv" --version 2>&1 | head -n 1)"
[[ -v S_PV_UV_ONLY && $S_PV_UV_ONLY == 1 ]] || q uv-venv.python "$("$S_PV_VENV_PATH/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>&1 | tail -n 1)"`,
  );
  add(
    stepOf(s, "vllm-install"),
    String.raw`q vllm-install.dist "$("$S_PV_VENV_PATH/bin/python" -c '
import importlib.metadata as m, importlib.util as u, sys
try:
    v = m.version(sys.argv[1])
except m.PackageNotFoundError:
    v = "absent"
print(v, "importable" if u.find_spec(sys.argv[2]) else "not-importable")' "$S_PV_DIST_NAME" "$S_PV_IMPORT_NAME" 2>&1 | tail -n 1)"`,
  );
  // The weights step's record (the verified commit and size) and that commit's snapshot in the cache:
  // files whose blob was removed (dangling links) and fewer bytes than verified. The unit runs with
  // HF_HUB_OFFLINE=1, so missing files stop vLLM at its next start: this finds them before.
  add(
    stepOf(s, "weights"),
    String.raw`w_c=${"$"}{S_PV_CACHE_DIR%/}; w_r=${"$"}{S_PV_STATE_DIR:-/var/lib/pulumi-vllm}; w_r=${"$"}{w_r%/}
if [[ $S_PV_MODEL_ID == /* ]]; then q weights.local "$(test -f "$S_PV_MODEL_ID/config.json" && echo 1 || echo 0)"
else
  w_s=$w_r/weights/$(printf '%s' "$w_c" | sha256sum | cut -c1-16)/current.state
  q weights.state "$(tr '\n' '\037' < "$w_s" 2>/dev/null)"
  w_m=$(sed -n 's/^commit=//p' "$w_s" 2>/dev/null)
  w_d=$w_c/hub/models--${"$"}{S_PV_MODEL_ID//\//--}/snapshots/$w_m
  if [[ -n $w_m && -d $w_d ]]; then q weights.snapshot "$(find "$w_d" \( -type f -o -type l \) | wc -l) $(find -L "$w_d" -type l | wc -l) $(find -L "$w_d" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')"
  else q weights.snapshot absent; fi
fi`,
  );
  add(
    stepOf(s, "launch-unit"),
    String.raw`u=/etc/systemd/system/$S_PV_UNIT_NAME
q launch-unit.unit_sha "$(sha256sum -- "$u" 2>/dev/null | cut -d' ' -f1)"
q launch-unit.env_stat "$(stat -c '%a %U' -- "$S_PV_ENV_FILE" 2>/dev/null)"
q launch-unit.env_sha "$(sha256sum -- "$S_PV_ENV_FILE" 2>/dev/null | cut -d' ' -f1)"
q launch-unit.active "$(systemctl is-active "$S_PV_UNIT_NAME" 2>/dev/null)"
q launch-unit.enabled "$(systemctl is-enabled "$S_PV_UNIT_NAME" 2>/dev/null)"
q launch-unit.show "$(systemctl show -p SubState -p NRestarts -p DropInPaths -p ActiveEnterTimestamp "$S_PV_UNIT_NAME" 2>/dev/null | tr '\n' ';')"
[[ ! -v S_PV_VENV_LINK ]] || q launch-unit.link "$(readlink -- "$S_PV_VENV_LINK" 2>/dev/null)"`,
  );
  const job = stepOf(s, "slurm-job");
  if (job) {
    parts.push(`J_ID=${shellQuote(String(s.outputs.jobId ?? ""))}`);
    parts.push(String.raw`q slurm-job.squeue "$(squeue -h -j "$J_ID" -o '%T|%N|%M|%L' 2>&1 | head -n 1)"`);
  }
  const base = probeBaseUrl(s);
  if (base) {
    const key = apiKeyOf(s);
    parts.push(`R_BASE=${shellQuote(base)}`, `R_KEY=${shellQuote(key ?? "")}`);
    parts.push(String.raw`q ready.health "$(curl -s -o /dev/null -m 10 -w '%{http_code}' "$R_BASE/health" 2>/dev/null)"
if [[ -n $R_KEY ]]; then body=$(printf 'Authorization: Bearer %s\n' "$R_KEY" | curl -s -m 10 -H @- -w '\n%{http_code}' "$R_BASE/v1/models" 2>/dev/null)
else body=$(curl -s -m 10 -w '\n%{http_code}' "$R_BASE/v1/models" 2>/dev/null); fi
q ready.models_code "$(printf '%s' "$body" | tail -n 1)"
q ready.models "$(printf '%s' "$body" | sed '$d' | base64 -w0)"
curl -s -m 10 "$R_BASE/metrics" 2>/dev/null | grep -E '^vllm:(num_requests_running|num_requests_waiting|kv_cache_usage_perc|gpu_cache_usage_perc)[{ ]' | sed -E 's/^([^{ ]+)(\{[^}]*\})? +([^ ]+).*/metric.\1=\3/'`);
  }
  parts.push(String.raw`if command -v nvidia-smi >/dev/null 2>&1; then i=0; while IFS= read -r l; do q gpu.$i "$l"; i=$((i+1)); done < <(nvidia-smi --query-gpu=index,name,memory.used,memory.total --format=csv,noheader,nounits 2>&1); fi`);
  parts.push("q probe.done 1");
  return parts.join("\n") + "\n";
}

/** Which command URNs to replace when a step drifted: the step, and what its undo takes with it. */
const REPAIR_WITH: Record<string, string[]> = {
  "uv-venv": ["uv-venv", "vllm-install"],
  "launch-unit": ["launch-unit", "readiness"],
  readiness: ["launch-unit", "readiness"],
  "slurm-job": ["slurm-job", "slurm-readiness"],
  "slurm-readiness": ["slurm-job", "slurm-readiness"],
};

function check(st: StepRecord, f: Record<string, string>, s: ServerRecord): { state: StepState; details: string[] } {
  const p = st.params;
  const drift: string[] = [];
  const ok: string[] = [];
  switch (st.step) {
    case "toolchain": {
      const missing = (f["toolchain.missing"] ?? "").trim();
      if (missing) drift.push(`packages not installed: ${missing}`);
      else ok.push(`${p.PV_PACKAGES.split(/\s+/).filter(Boolean).length} packages installed`);
      break;
    }
    case "swapfile": {
      const mib = Number(p.PV_SWAP_SIZE_MIB);
      if (mib === 0) {
        ok.push("no swap file planned");
        break;
      }
      if (f["swapfile.active"] !== "1") drift.push(`${p.PV_SWAP_PATH} is not an active swap (swapon --show)`);
      if (f["swapfile.fstab"] !== "1") drift.push(`/etc/fstab has ${f["swapfile.fstab"] ?? "?"} lines for ${p.PV_SWAP_PATH}, expected 1`);
      if (f["swapfile.bytes"] !== String(mib * 1024 * 1024)) drift.push(`${p.PV_SWAP_PATH} is ${f["swapfile.bytes"] === "absent" ? "absent" : `${f["swapfile.bytes"]} bytes`}, expected ${mib} MiB`);
      ok.push(`${p.PV_SWAP_PATH} active, ${mib} MiB, one fstab line`);
      break;
    }
    case "earlyoom": {
      const want = earlyoomArgs(p);
      if (f["earlyoom.active"] !== "active") drift.push(`earlyoom.service is ${f["earlyoom.active"] || "not installed"}`);
      if (f["earlyoom.conf_lines"] !== "1" || f["earlyoom.conf"] !== want.line) drift.push(`/etc/default/earlyoom has ${JSON.stringify(f["earlyoom.conf"] ?? "")}, expected ${JSON.stringify(want.line)}`);
      const got = (f["earlyoom.argv"] ?? "").split("\x1f").filter((x, i, a) => !(i === a.length - 1 && x === "")).slice(1);
      if (f["earlyoom.active"] === "active" && got.join(" ") !== want.argv.join(" ")) drift.push(`earlyoom runs with [${got.join(" ")}], expected [${want.argv.join(" ")}]`);
      ok.push(`earlyoom active with ${want.argv.join(" ")}`);
      break;
    }
    case "uv-venv": {
      const uv = f["uv-venv.uv"] ?? "";
      if (!uv.includes(p.PV_UV_VERSION)) drift.push(`uv ${p.PV_UV_VERSION} at ${p.PV_UV_DIR}/${p.PV_UV_VERSION}/uv: ${uv || "missing"}`);
      // Versioned venvs: this step installs uv alone; vllm-install makes each release's venv.
      if (p.PV_UV_ONLY === "1") {
        ok.push(`uv ${p.PV_UV_VERSION} (the venvs are vllm-install's)`);
        break;
      }
      const py = f["uv-venv.python"] ?? "";
      if (!/^\d+\.\d+\.\d+$/.test(py)) drift.push(`no venv at ${p.PV_VENV_PATH}: ${py || "missing"}`);
      else if (/^\d+\.\d+(\.\d+)?$/.test(p.PV_PYTHON) && !`${py}.`.startsWith(`${p.PV_PYTHON}.`)) drift.push(`the venv's Python is ${py}, expected ${p.PV_PYTHON}`);
      ok.push(`uv ${p.PV_UV_VERSION}, venv ${p.PV_VENV_PATH} (Python ${py})`);
      break;
    }
    case "vllm-install": {
      const [version, importable] = (f["vllm-install.dist"] ?? "").split(" ");
      if (version !== p.PV_DIST_VERSION) drift.push(`${p.PV_DIST_NAME} in ${p.PV_VENV_PATH} is ${version === "absent" ? "not installed" : version || "unknown"}, expected ${p.PV_DIST_VERSION}`);
      else if (importable !== "importable") drift.push(`${p.PV_IMPORT_NAME} does not import from ${p.PV_VENV_PATH}`);
      ok.push(`${p.PV_DIST_NAME} ${p.PV_DIST_VERSION} in ${p.PV_VENV_PATH}`);
      break;
    }
    case "weights": {
      const model = p.PV_MODEL_ID;
      if (model.startsWith("/")) {
        if (f["weights.local"] !== "1") drift.push(`${model}/config.json is missing: model.id names a path on the host that holds no model`);
        ok.push(`${model} is a path on the host (nothing downloaded)`);
        break;
      }
      const rec = parseFacts((f["weights.state"] ?? "").replace(/\x1f/g, "\n"));
      const snap = (f["weights.snapshot"] ?? "absent").split(" ");
      const [files, dangling, bytes] = snap.map(Number);
      if (!rec.commit) drift.push(`no verified download of ${model} is recorded for ${p.PV_CACHE_DIR} (the weights step's record is gone)`);
      else if (rec.model !== model) drift.push(`the record for ${p.PV_CACHE_DIR} is of ${rec.model || "another model"}, not ${model}`);
      else if (snap[0] === "absent") drift.push(`the snapshot of ${model} at ${rec.commit.slice(0, 12)} is gone from ${p.PV_CACHE_DIR}/hub`);
      else if (dangling > 0) drift.push(`${dangling} of ${files} files of ${model} at ${rec.commit.slice(0, 12)} point at removed blobs`);
      else if (bytes < Number(rec.bytes)) drift.push(`the snapshot of ${model} holds ${bytes} bytes, ${rec.bytes} were verified`);
      if (drift.length && p.PV_REMOVE_CACHE === "1") drift.push("(repair replaces the weights step; with host.removeModelCache the model is fetched again in full)");
      ok.push(`${model} at ${(rec.commit ?? "").slice(0, 12)}: ${files} files, ${bytes} bytes, as verified`);
      break;
    }
    case "launch-unit": {
      const unit = p.PV_UNIT_NAME;
      const unitSha = f["launch-unit.unit_sha"];
      if (!unitSha) drift.push(`/etc/systemd/system/${unit} is missing`);
      else if (unitSha !== sha256(p.PV_UNIT_CONTENT)) drift.push(`/etc/systemd/system/${unit} differs from the rendered unit (sha256 ${unitSha.slice(0, 12)}, expected ${sha256(p.PV_UNIT_CONTENT).slice(0, 12)})`);
      const stat = f["launch-unit.env_stat"];
      if (!stat) drift.push(`${p.PV_ENV_FILE} is missing`);
      else if (stat !== "600 root") drift.push(`${p.PV_ENV_FILE} is mode/owner ${stat}, expected 600 root`);
      // Only with the decrypted secrets can the env file's hash be known.
      if (stat && Object.keys(st.secrets).length && f["launch-unit.env_sha"] !== sha256(renderedEnvFile(unit, st.secrets))) drift.push(`${p.PV_ENV_FILE} differs from the rendered env file`);
      const active = f["launch-unit.active"];
      const show = parseFacts((f["launch-unit.show"] ?? "").replace(/;/g, "\n"));
      if (active !== "active") drift.push(`${unit} is ${active || "unknown"}${show.SubState ? ` (${show.SubState})` : ""}`);
      // The stack started it once; each restart since is a crash or an OOM kill systemd recovered from
      // (or not yet: a model that loads for 40 minutes). Replacing the unit starts it afresh (count 0).
      if (Number(show.NRestarts) > 0) drift.push(`${unit} was restarted ${show.NRestarts} time(s) by systemd after it died (a crash or an OOM kill: see pulumi-vllm logs)`);
      // The link the unit runs vLLM from points at the release the stack installed (versioned venvs).
      if (p.PV_VENV_LINK && f["launch-unit.link"] !== p.PV_VENV_TARGET) drift.push(`${p.PV_VENV_LINK} points at ${f["launch-unit.link"] || "nothing"}, expected ${p.PV_VENV_TARGET}`);
      if (f["launch-unit.enabled"] !== "enabled") drift.push(`${unit} is ${f["launch-unit.enabled"] || "not"} enabled`);
      ok.push(`${unit} active since ${show.ActiveEnterTimestamp || "?"}${show.DropInPaths ? `, drop-ins ${show.DropInPaths}` : ""}; unit and env file as rendered`);
      break;
    }
    case "readiness":
    case "slurm-readiness": {
      const model = p.PV_SERVED_MODEL ?? String(s.outputs.servedModelName ?? "");
      const health = f["ready.health"];
      if (health !== "200") drift.push(`/health answers ${health && health !== "000" ? `HTTP ${health}` : "nothing"}`);
      const code = f["ready.models_code"];
      let ids: string[] = [];
      try {
        ids = JSON.parse(Buffer.from(f["ready.models"] ?? "", "base64").toString("utf8")).data.map((m: { id: string }) => m.id);
      } catch {
        /* not JSON: said below */
      }
      if (code !== "200") drift.push(`/v1/models answers ${code && code !== "000" ? `HTTP ${code}` : "nothing"}`);
      else if (!ids.includes(model)) drift.push(`/v1/models lists ${ids.join(", ") || "nothing"}, not ${model}`);
      ok.push(`/health 200, /v1/models serves ${model}`);
      break;
    }
    case "slurm-job": {
      const [state, node, elapsed, left] = (f["slurm-job.squeue"] ?? "").split("|");
      if (state !== "RUNNING") drift.push(`job ${s.outputs.jobId} is ${state || "no longer in the queue"}`);
      ok.push(`job ${s.outputs.jobId} RUNNING on ${node}, for ${elapsed}, ${left} left`);
      break;
    }
    default:
      return { state: "skipped", details: ["no check for this step"] };
  }
  return drift.length ? { state: "drifted", details: drift } : { state: "ok", details: ok };
}

/** Per-step status of a server from the probe's facts (pure). */
export function evaluate(s: ServerRecord, f: Record<string, string>, target: string): ServerStatus {
  const steps: StepStatus[] = [];
  const complete = f["probe.done"] === "1";
  for (const st of s.steps) {
    if (!complete) {
      steps.push({ step: st.step, state: "failed", details: ["the probe did not finish on the host"], urn: st.urn });
      continue;
    }
    steps.push({ step: st.step, ...check(st, f, s), urn: st.urn });
  }
  // A server that is down fails its readiness check too: that is the unit's drift, not a second one.
  const unit = steps.find((x) => x.step === "launch-unit" || x.step === "slurm-job");
  for (const x of steps) {
    if ((x.step === "readiness" || x.step === "slurm-readiness") && x.state === "drifted" && unit?.state === "drifted") {
      x.state = "skipped";
      x.details = [`not checked: ${unit.step} drifted`];
    }
  }
  const wanted = new Set<string>();
  for (const x of steps) if (x.state === "drifted") for (const w of REPAIR_WITH[x.step] ?? [x.step]) wanted.add(w);
  const replace = s.steps.filter((x) => wanted.has(x.step)).map((x) => x.urn);
  const metrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(f)) if (k.startsWith("metric.")) metrics[k.slice(7)] = (metrics[k.slice(7)] ?? 0) + Number(v);
  const gpus = Object.keys(f)
    .filter((k) => k.startsWith("gpu."))
    .sort()
    .map((k) => f[k]);
  let job: ServerStatus["job"];
  if (f["slurm-job.squeue"] !== undefined) {
    const [state, node, elapsed, timeLeft] = f["slurm-job.squeue"].split("|");
    job = { id: String(s.outputs.jobId ?? ""), state: state || "not in the queue", node: node ?? "", elapsed: elapsed ?? "", timeLeft: timeLeft ?? "" };
  }
  return { server: s.name, topology: s.topology, target, steps, metrics, gpus, job, replace };
}

/** The exit code: 1 when something could not be checked, 3 when something drifted, else 0. */
export function exitCodeOf(statuses: ServerStatus[]): number {
  const all = statuses.flatMap((x) => x.steps);
  if (all.some((x) => x.state === "failed")) return 1;
  if (all.some((x) => x.state === "drifted")) return 3;
  return 0;
}

/** `pulumi up --replace ...` that re-converges what drifted (argv, for printing and for --repair). */
export function repairArgv(stack: string, statuses: ServerStatus[], cwd?: string): string[] | undefined {
  const urns = [...new Set(statuses.flatMap((x) => x.replace))];
  if (!urns.length) return undefined;
  return ["pulumi", "up", "--stack", stack, ...(cwd ? ["--cwd", cwd] : []), ...urns.flatMap((u) => ["--replace", u])];
}

const LABEL: Record<StepState, string> = { ok: "ok", drifted: "DRIFTED", failed: "FAILED", skipped: "-" };

export function renderStatus(statuses: ServerStatus[]): string {
  const out: string[] = [];
  for (const s of statuses) {
    out.push(`server ${s.server} (${s.topology === "slurm" ? "SLURM job via" : "one host,"} ${s.target})`);
    for (const x of s.steps) {
      out.push(`  ${LABEL[x.state].padEnd(8)} ${x.step.padEnd(16)} ${x.details[0] ?? ""}`);
      for (const d of x.details.slice(1)) out.push(`  ${"".padEnd(8)} ${"".padEnd(16)} ${d}`);
    }
    if (s.job) out.push(`  job ${s.job.id}: ${s.job.state}${s.job.node ? ` on ${s.job.node}` : ""}${s.job.elapsed ? `, running ${s.job.elapsed}` : ""}${s.job.timeLeft ? `, ${s.job.timeLeft} left` : ""}`);
    const m = s.metrics;
    if (Object.keys(m).length) {
      const kv = m["vllm:kv_cache_usage_perc"] ?? m["vllm:gpu_cache_usage_perc"];
      out.push(`  requests running ${m["vllm:num_requests_running"] ?? "?"}, waiting ${m["vllm:num_requests_waiting"] ?? "?"}, KV cache ${kv === undefined ? "?" : `${(kv * 100).toFixed(1)} %`} used`);
    }
    for (const g of s.gpus) out.push(`  GPU ${g} (index, name, MiB used, MiB total)`);
  }
  return out.join("\n") + "\n";
}
