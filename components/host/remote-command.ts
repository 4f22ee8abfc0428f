// The one place that turns a host step's bash script plus its parameters into
// the command string run over SSH. Used by the Pulumi components (as the
// `create`/`delete` of a remote.Command) and by the host-tier tests, so what is
// tested is byte for byte what runs.
//
// Contract:
//   [sudo -n ]env PV_ACTION=<action> PV_A='<quoted>' PV_B='<quoted>' bash -c '<quoted script>' pv-<step>
// - Parameters are NOT sent with SSH setenv (sshd refuses it unless AcceptEnv
//   allows it) and are NOT spliced into the script text: they are arguments of
//   `env`, each value POSIX single-quoted. The script text is constant, so its
//   hash (scriptHash) identifies it in the resource triggers.
// - `pv-<step>` becomes $0 of the script (shows in ps and in bash's messages).
// - Secrets never go into env or the command (pulumi-command puts the command
//   and its output into error messages): they travel on stdin as NAME=value
//   lines (renderStdin), and the script reads them.
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";

export type StepAction = "create" | "delete";

export interface RemoteCommandArgs {
  /** Step name, [a-z0-9-]+; becomes `pv-<step>` ($0 of the script). */
  step: string;
  /** The bash script text (constant; never has parameters spliced into it). */
  script: string;
  action: StepAction;
  /** Parameters, names PV_[A-Z0-9_]+ (PV_ACTION is set from `action`). */
  env: Record<string, string>;
  /** Prefix with `sudo -n` (non-interactive: fails instead of prompting). */
  sudo: boolean;
}

const STEP_RE = /^[a-z0-9][a-z0-9-]*$/;
const ENV_NAME_RE = /^PV_[A-Z0-9_]+$/;
const SECRET_NAME_RE = /^[A-Z][A-Z0-9_]*$/;

/**
 * POSIX shell single-quoting: the result is one word whose value is exactly
 * `value`, for any string (quotes, newlines, $(), backticks, globs...).
 * A single quote is written as '\'' (close, escaped quote, reopen).
 */
export function shellQuote(value: string): string {
  if (value.includes("\0")) {
    throw new Error("shellQuote: a NUL byte cannot be passed in a shell word");
  }
  return "'" + value.replace(/'/g, "'\\''") + "'";
}

export function renderRemoteCommand(args: RemoteCommandArgs): string {
  const { step, script, action, env, sudo } = args;
  if (!STEP_RE.test(step)) {
    throw new Error(`renderRemoteCommand: bad step name ${JSON.stringify(step)} (want [a-z0-9-]+)`);
  }
  if (action !== "create" && action !== "delete") {
    throw new Error(`renderRemoteCommand: bad action ${JSON.stringify(action)} (want create or delete)`);
  }
  if (script.trim() === "") {
    throw new Error(`renderRemoteCommand: empty script for step ${step}`);
  }
  const assignments = [`PV_ACTION=${action}`];
  for (const name of Object.keys(env).sort()) {
    if (!ENV_NAME_RE.test(name)) {
      throw new Error(`renderRemoteCommand: bad parameter name ${JSON.stringify(name)} for step ${step} (want PV_[A-Z0-9_]+)`);
    }
    if (name === "PV_ACTION") {
      throw new Error(`renderRemoteCommand: PV_ACTION is set from 'action', do not pass it in env (step ${step})`);
    }
    const value = env[name];
    if (typeof value !== "string") {
      throw new Error(`renderRemoteCommand: parameter ${name} of step ${step} is not a string`);
    }
    assignments.push(`${name}=${shellQuote(value)}`);
  }
  const parts = [
    ...(sudo ? ["sudo", "-n"] : []),
    "env",
    ...assignments,
    "bash",
    "-c",
    shellQuote(script),
    `pv-${step}`,
  ];
  return parts.join(" ");
}

/**
 * Secrets for a step's stdin: one `NAME=value` line each (values may not hold
 * a newline or NUL). The script reads them with e.g.
 *   while IFS= read -r line; do case $line in HF_TOKEN=*) ...; esac; done
 */
export function renderStdin(secrets: Record<string, string>): string {
  return Object.keys(secrets)
    .sort()
    .map((name) => {
      if (!SECRET_NAME_RE.test(name)) {
        throw new Error(`renderStdin: bad secret name ${JSON.stringify(name)} (want [A-Z][A-Z0-9_]*)`);
      }
      const value = secrets[name];
      if (/[\n\r\0]/.test(value)) {
        // Do not echo the value: it is a secret.
        throw new Error(`renderStdin: secret ${name} contains a newline or NUL`);
      }
      return `${name}=${value}\n`;
    })
    .join("");
}

/** sha256 hex of a script's text (part of each step's triggers). */
export function scriptHash(script: string): string {
  return createHash("sha256").update(script, "utf8").digest("hex");
}

// A step script includes the shared step library with exactly this line (it
// also works when the script is run from the source tree, and shellcheck
// follows it); readStepScript puts the library's text in its place, so what
// runs on the host is one self-contained `bash -c`.
const INCLUDE_RE = /^\. "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)\/lib\/([a-z0-9-]+\.sh)"$/gm;

function findScript(rel: string): string {
  const candidates = [
    path.join(__dirname, "scripts", rel),
    path.resolve(__dirname, "..", "..", "..", "components", "host", "scripts", rel),
  ];
  for (const file of candidates) {
    if (fs.existsSync(file)) return fs.readFileSync(file, "utf8");
  }
  throw new Error(`readStepScript: no script ${rel} (looked in ${candidates.join(", ")})`);
}

/**
 * The text of components/host/scripts/<step>.sh with its library includes
 * inlined. Looks next to this module first, then in the source tree (for code
 * compiled to dist/, which does not copy the .sh files).
 */
export function readStepScript(step: string): string {
  if (!STEP_RE.test(step)) {
    throw new Error(`readStepScript: bad step name ${JSON.stringify(step)}`);
  }
  return findScript(`${step}.sh`).replace(INCLUDE_RE, (_line, lib: string) =>
    `# ---- included: lib/${lib} ----\n${findScript(`lib/${lib}`).replace(/^#!.*\n/, "")}# ---- end of lib/${lib} ----`,
  );
}

/** The last line of a step's stdout, which says what it did. */
export function stepResult(stdout: string): "changed" | "unchanged" | undefined {
  const lines = stdout.replace(/\n+$/, "").split("\n");
  const last = lines[lines.length - 1];
  return last === "changed" || last === "unchanged" ? last : undefined;
}
