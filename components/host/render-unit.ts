// Pure renderer of the systemd service unit that runs `vllm serve`.
//
// No Pulumi, no I/O: a function of its input, unit tested in
// test/unit/render-unit.test.ts and proven on a real systemd host by
// test/host/launch-unit.test.ts (the argv reaches the process byte for byte).
//
// Quoting follows systemd's own rules (systemd.service(5) "COMMAND LINES",
// systemd.syntax(7), systemd.unit(5) "SPECIFIERS"):
// - ExecStart= is split into words; a word in double quotes may contain
//   spaces, and C-style escapes (\\ \" \n \t \xNN) are decoded inside it.
// - "%" starts a specifier in ExecStart=, Environment=, Description=,
//   WorkingDirectory= and EnvironmentFile=: a literal "%" is written "%%".
// - In ExecStart= "$NAME" / "${NAME}" are replaced by environment variables:
//   a literal "$" is written "$$". Environment= does NOT expand "$".
// - An unquoted lone ";" separates commands and a leading "-@:+!" of the
//   first word are prefixes: every word is double-quoted here and the
//   executable must be an absolute path, so neither can happen.
//
// Secrets never go into the unit: environment keys that are secrets
// (VLLM_API_KEY, HF_TOKEN, ...) and the flags `--api-key` / `--hf-token` are
// refused. They belong in the root-only EnvironmentFile that launch-unit.sh
// writes from stdin.

export interface UnitSpec {
  /** e.g. "vllm.service" */
  unitName: string;
  /** one line, e.g. "vLLM OpenAI-compatible server (Qwen/Qwen2.5-72B)" */
  description: string;
  /** argv of the server; argv[0] is an absolute path, e.g. /opt/venv/bin/vllm */
  execArgv: string[];
  /** non-secret environment (NCCL_*, VLLM_*, CUDA_*, HF_HOME ...) */
  environment: Record<string, string>;
  /** absolute path of the root-only env file carrying the secrets */
  environmentFile: string;
  /** run as this user (default: root, systemd's default) */
  user?: string;
  /** ... and this group (default: the user's login group) */
  group?: string;
  /**
   * Turns on the sandbox (see HARDENING): the whole file system read-only
   * except these absolute paths (the model cache, the server's home), which
   * must exist when the unit starts.
   */
  readWritePaths?: string[];
  workingDirectory?: string;
  /** seconds; with Type=exec it bounds fork+exec, kept long for a 45-min start */
  timeoutStartSec: number;
  /** seconds between a crash and the restart */
  restartSec: number;
  /** at most this many starts ... */
  startLimitBurst: number;
  /** ... within this many seconds, then the unit stays failed */
  startLimitIntervalSec: number;
  /** 1..1000: positive so the kernel OOM killer and EarlyOOM pick vLLM first */
  oomScoreAdjust: number;
  /** extra units to order after (and want), e.g. ["earlyoom.service"] */
  after?: string[];
  /** seconds between SIGTERM and SIGKILL on stop (default 120) */
  timeoutStopSec?: number;
  /**
   * LimitNOFILE= (default: not set; systemd's default hard limit applies and
   * vLLM raises its soft limit to the hard limit itself). A value above the
   * host's hard ceiling makes the unit fail to start (status 205/LIMITS).
   */
  limitNofile?: number;
}

/** Environment names that are secrets and must only come via the env file. */
export const SECRET_ENV_NAMES: readonly string[] = [
  "VLLM_API_KEY",
  "HF_TOKEN",
  "HUGGING_FACE_HUB_TOKEN",
  "HUGGINGFACE_HUB_TOKEN",
];

/** vLLM flags that carry secrets and must never be in argv. */
export const SECRET_FLAGS: readonly string[] = ["--api-key", "--hf-token"];

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const UNIT_NAME = /^[A-Za-z0-9:_.@-]+\.service$/;
const OTHER_UNIT_NAME = /^[A-Za-z0-9:_.\\@-]+\.(service|target|socket|mount|path|timer|device|swap|slice|scope)$/;

function fail(msg: string): never {
  throw new Error(`renderUnit: ${msg}`);
}

function checkNoNul(what: string, s: string): void {
  if (s.includes("\0")) fail(`${what} contains a NUL byte, which systemd cannot represent`);
}

/** A literal "%" in any setting that expands specifiers. */
export function escapeSpecifiers(s: string): string {
  return s.replace(/%/g, "%%");
}

/** Backslash-escape for the inside of a systemd double-quoted word. */
function cEscape(s: string): string {
  let out = "";
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === '"') out += '\\"';
    else if (ch === "\n") out += "\\n";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\r") out += "\\r";
    else if (code < 0x20 || code === 0x7f) out += "\\x" + code.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out;
}

/**
 * One ExecStart= word: always double-quoted, C-escaped, with "%" -> "%%" and
 * "$" -> "$$" so systemd passes it to the process unchanged.
 */
export function quoteExecArg(arg: string): string {
  checkNoNul("an ExecStart argument", arg);
  return '"' + cEscape(arg).replace(/%/g, "%%").replace(/\$/g, "$$$$") + '"';
}

/** One Environment= assignment, quoted as a single word: "NAME=value". */
export function quoteEnvironment(name: string, value: string): string {
  if (!ENV_NAME.test(name)) fail(`environment name ${JSON.stringify(name)} is not a valid variable name`);
  checkNoNul(`environment ${name}`, value);
  return '"' + escapeSpecifiers(cEscape(`${name}=${value}`)) + '"';
}

function checkPath(what: string, p: string): void {
  if (!p.startsWith("/")) fail(`${what} must be an absolute path, got ${JSON.stringify(p)}`);
  if (/[\s"'\\]/.test(p) || p.includes("\0")) fail(`${what} must not contain whitespace, quotes or backslashes: ${JSON.stringify(p)}`);
}

function checkInt(what: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(v) || v < min || v > max) fail(`${what} must be an integer in [${min}, ${max}], got ${v}`);
}

/**
 * The systemd sandbox of a vLLM server, each directive with why it is there
 * (systemd.exec(5)). What vLLM needs, and so what is NOT restricted:
 * - the GPUs: /dev/nvidia*, /dev/nvidia-uvm, /dev/dri, /dev/kfd. No
 *   PrivateDevices=, DevicePolicy=, DeviceAllow= (nor ProtectClock=, which
 *   adds a DeviceAllow= and so closes every other device).
 * - /dev/shm: NCCL and PyTorch share tensors between the workers there
 *   (PrivateTmp= does not touch it; no PrivateIPC=, RemoveIPC=).
 * - writable, executable memory: Triton, torch.compile, CUDA graphs and
 *   FlashInfer compile kernels at run time (no MemoryDenyWriteExecute=).
 * - a wide set of system calls (CUDA, NCCL, Ray, io_uring in some loaders):
 *   no SystemCallFilter=, whose allow-lists break on a new release.
 * - the network: it is an HTTP server, and NCCL/Ray talk TCP and InfiniBand
 *   (no PrivateNetwork=, RestrictAddressFamilies=).
 * - compile caches and the model cache: the writable paths (its home, whose
 *   ~/.cache holds vLLM's, Triton's and FlashInfer's caches, and HF_HOME).
 */
export const HARDENING: readonly string[] = [
  // No setuid/setgid/file capability can raise the server's privileges (a
  // remote-code model, a compromised dependency); vLLM execs nothing that needs it.
  "NoNewPrivileges=yes",
  // The whole file system read-only (the venv, /etc, /usr, /opt) except ReadWritePaths=.
  "ProtectSystem=strict",
  // Its own /tmp and /var/tmp: torch's inductor cache and temp files stay its own.
  "PrivateTmp=yes",
  // An unprivileged user needs no capability; none can be gained back.
  "CapabilityBoundingSet=",
  "AmbientCapabilities=",
  // No new setuid/setgid files (a way to hand privileges to another user).
  "RestrictSUIDSGID=yes",
  // /proc/sys, /sys and the like read-only; no kernel modules loaded; the
  // cgroup tree read-only: a server has no business changing the kernel.
  "ProtectKernelTunables=yes",
  "ProtectKernelModules=yes",
  "ProtectControlGroups=yes",
  // No personality(2) tricks (old ABIs), no realtime scheduling that could
  // starve the machine (sshd included) when the server spins.
  "LockPersonality=yes",
  "RestrictRealtime=yes",
];

/** Paths under which ProtectHome=yes would hide something the server must read or write. */
const HOME_DIRS = ["/home", "/root", "/run/user"];

export function renderUnit(spec: UnitSpec): string {
  const {
    unitName, description, execArgv, environment, environmentFile, user, workingDirectory,
    timeoutStartSec, restartSec, startLimitBurst, startLimitIntervalSec, oomScoreAdjust,
  } = spec;
  const after = spec.after ?? [];
  const timeoutStopSec = spec.timeoutStopSec ?? 120;
  const limitNofile = spec.limitNofile;

  if (!UNIT_NAME.test(unitName)) fail(`unitName must look like "vllm.service", got ${JSON.stringify(unitName)}`);
  if (!description || /[\r\n\0]/.test(description)) fail("description must be one non-empty line");
  if (execArgv.length === 0) fail("execArgv is empty");
  if (!execArgv[0].startsWith("/")) fail(`execArgv[0] must be an absolute path, got ${JSON.stringify(execArgv[0])}`);
  for (const a of execArgv) {
    const flag = a.split("=", 1)[0];
    if (SECRET_FLAGS.includes(flag)) {
      fail(`${flag} would put a secret into argv (visible in /proc/<pid>/cmdline and the unit file); pass it through the environment file instead`);
    }
  }
  for (const name of Object.keys(environment)) {
    if (SECRET_ENV_NAMES.includes(name)) {
      fail(`${name} is a secret and must not be written into the unit; it belongs in the environment file (${environmentFile})`);
    }
  }
  checkPath("environmentFile", environmentFile);
  if (workingDirectory !== undefined) checkPath("workingDirectory", workingDirectory);
  if (user !== undefined && !/^[a-z_][a-z0-9_-]*\$?$/i.test(user)) fail(`user ${JSON.stringify(user)} is not a valid user name`);
  if (spec.group !== undefined && !/^[a-z_][a-z0-9_-]*$/i.test(spec.group)) fail(`group ${JSON.stringify(spec.group)} is not a valid group name`);
  const rw = spec.readWritePaths;
  for (const p of rw ?? []) checkPath("readWritePaths", p);
  for (const u of after) if (!OTHER_UNIT_NAME.test(u)) fail(`after: ${JSON.stringify(u)} is not a unit name`);
  checkInt("timeoutStartSec", timeoutStartSec, 1);
  checkInt("timeoutStopSec", timeoutStopSec, 1);
  checkInt("restartSec", restartSec, 0);
  checkInt("startLimitBurst", startLimitBurst, 1);
  checkInt("startLimitIntervalSec", startLimitIntervalSec, 1);
  checkInt("oomScoreAdjust", oomScoreAdjust, 1, 1000);
  if (limitNofile !== undefined) checkInt("limitNofile", limitNofile, 1024);
  // With RestartSec=r between starts, `burst` starts take at least (burst-1)*r
  // seconds; an interval shorter than that can never trip the limit and a
  // crashing server would restart forever.
  if (startLimitIntervalSec <= restartSec * (startLimitBurst - 1)) {
    fail(`startLimitIntervalSec (${startLimitIntervalSec}) must exceed restartSec x (startLimitBurst - 1) = ${restartSec * (startLimitBurst - 1)}, or the start limit can never trigger`);
  }

  const afterUnits = ["network-online.target", ...after];
  const lines: string[] = [
    "# Managed by pulumi-vllm (components/host/render-unit.ts). Do not edit: changes are overwritten.",
    "# Secrets are not in this file: they come from EnvironmentFile= (root-only, 0600).",
    "[Unit]",
    `Description=${escapeSpecifiers(description)}`,
    `After=${afterUnits.join(" ")}`,
    `Wants=${afterUnits.join(" ")}`,
    `StartLimitIntervalSec=${startLimitIntervalSec}`,
    `StartLimitBurst=${startLimitBurst}`,
    "",
    "[Service]",
    // exec: `systemctl start` fails when the binary cannot be executed (simple
    // would report success); readiness itself is judged by the readiness gate.
    "Type=exec",
    `ExecStart=${execArgv.map(quoteExecArg).join(" ")}`,
  ];
  for (const name of Object.keys(environment).sort()) {
    lines.push(`Environment=${quoteEnvironment(name, environment[name])}`);
  }
  lines.push(`EnvironmentFile=${escapeSpecifiers(environmentFile)}`);
  if (user !== undefined) lines.push(`User=${user}`);
  if (spec.group !== undefined) lines.push(`Group=${spec.group}`);
  if (rw !== undefined) {
    // The NVIDIA driver creates /dev/nvidia-uvm on first use with the setuid
    // nvidia-modprobe, which NoNewPrivileges= (and a non-root user) cannot run:
    // make the nodes first, as root ("+"); "-": a host without it (AMD, no
    // GPU, nodes made by udev) starts anyway.
    lines.push("ExecStartPre=-+/usr/bin/nvidia-modprobe -u -c=0", ...HARDENING);
    // Home directories hidden, unless the server must reach something there
    // (read-only then: ReadWritePaths= still opens its own paths).
    const underHome = [execArgv[0], workingDirectory, ...rw].some((p) => p !== undefined && HOME_DIRS.some((h) => p === h || p.startsWith(h + "/")));
    lines.push(`ProtectHome=${underHome ? "read-only" : "yes"}`);
    if (rw.length > 0) lines.push(`ReadWritePaths=${rw.map(escapeSpecifiers).join(" ")}`);
  }
  if (workingDirectory !== undefined) lines.push(`WorkingDirectory=${escapeSpecifiers(workingDirectory)}`);
  lines.push(
    "Restart=on-failure",
    `RestartSec=${restartSec}`,
    `TimeoutStartSec=${timeoutStartSec}`,
    `TimeoutStopSec=${timeoutStopSec}`,
    // SIGTERM to the main process (vLLM shuts its workers down itself), SIGKILL
    // to whatever is left in the cgroup after TimeoutStopSec.
    "KillMode=mixed",
    `OOMScoreAdjust=${oomScoreAdjust}`,
    ...(limitNofile !== undefined ? [`LimitNOFILE=${limitNofile}`] : []),
    "StandardOutput=journal",
    "StandardError=journal",
    `SyslogIdentifier=${unitName.replace(/\.service$/, "")}`,
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  );
  return lines.join("\n");
}
