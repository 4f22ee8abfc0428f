import { spawnSync } from "child_process";
import {
  renderRemoteCommand,
  renderStdin,
  scriptHash,
  shellQuote,
  stepResult,
  readStepScript,
} from "../../components/host/remote-command";

const NASTY = [
  "",
  "plain",
  "it's",
  "'",
  "''",
  "'\\''",
  'double "quoted"',
  "a\nb\n",
  "\n",
  "$(touch /tmp/pv-pwned)",
  "`touch /tmp/pv-pwned`",
  "${HOME} $HOME $$ $1 $@ $*",
  "*; rm -rf / #",
  "back\\slash\\\\ and \\n",
  "tab\there",
  "!history !! ^x",
  "-n",
  "--option=value",
  "unicode: ümlaut ✓ 日本",
  " leading and trailing spaces ",
  "a | b & c > d < e ; f",
  "~ ~root",
];

// Run a string through a real POSIX shell (dash when /bin/sh is dash).
function sh(command: string, input?: string) {
  const r = spawnSync("/bin/sh", ["-c", command], { input, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("shellQuote", () => {
  it.each(NASTY.map((v) => [JSON.stringify(v), v]))("round-trips %s through /bin/sh", (_label, value) => {
    const r = sh(`printf '%s' ${shellQuote(value)}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(value);
  });

  it("round-trips through bash too", () => {
    for (const value of NASTY) {
      const r = spawnSync("bash", ["-c", `printf '%s' ${shellQuote(value)}`], { encoding: "utf8" });
      expect(r.stdout).toBe(value);
    }
  });

  it("always produces one single-quoted word", () => {
    expect(shellQuote("abc")).toBe("'abc'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote("")).toBe("''");
  });

  it("refuses NUL", () => {
    expect(() => shellQuote("a\0b")).toThrow(/NUL/);
  });
});

describe("renderRemoteCommand", () => {
  const script = [
    "#!/usr/bin/env bash",
    "set -euo pipefail",
    'printf "0=%s\\n" "$0"',
    'printf "action=%s\\n" "$PV_ACTION"',
    'for v in "${!PV_@}"; do printf "%s=%s\\0" "$v" "${!v}" >&2; done',
    "echo changed",
  ].join("\n");

  it("has the documented shape", () => {
    const cmd = renderRemoteCommand({
      step: "swapfile",
      script: "echo hi",
      action: "create",
      env: { PV_SWAP_SIZE_MIB: "64", PV_SWAP_PATH: "/swapfile" },
      sudo: false,
    });
    expect(cmd).toBe(
      "env PV_ACTION=create PV_SWAP_PATH='/swapfile' PV_SWAP_SIZE_MIB='64' bash -c 'echo hi' pv-swapfile",
    );
    const withSudo = renderRemoteCommand({ step: "x", script: "true", action: "delete", env: {}, sudo: true });
    expect(withSudo).toBe("sudo -n env PV_ACTION=delete bash -c 'true' pv-x");
  });

  it("is deterministic (env keys sorted)", () => {
    const a = renderRemoteCommand({ step: "s", script, action: "create", env: { PV_B: "2", PV_A: "1" }, sudo: false });
    const b = renderRemoteCommand({ step: "s", script, action: "create", env: { PV_A: "1", PV_B: "2" }, sudo: false });
    expect(a).toBe(b);
  });

  it("delivers every nasty value unchanged to the script, and the script text verbatim", () => {
    const env: Record<string, string> = {};
    NASTY.forEach((v, i) => (env[`PV_V${i}`] = v));
    const cmd = renderRemoteCommand({ step: "nasty", script, action: "create", env, sudo: false });
    // The script text is inside one quoted word, never altered.
    expect(cmd).toContain(shellQuote(script));
    const r = sh(cmd);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("0=pv-nasty\naction=create\nchanged\n");
    const got: Record<string, string> = {};
    for (const kv of r.stderr.split("\0").filter((s) => s !== "")) {
      const i = kv.indexOf("=");
      got[kv.slice(0, i)] = kv.slice(i + 1);
    }
    expect(got).toEqual({ ...env, PV_ACTION: "create" });
  });

  it("does not execute command substitutions in values", () => {
    const marker = `/tmp/pv-remote-command-test-${process.pid}`;
    const cmd = renderRemoteCommand({
      step: "t",
      script: 'printf "%s" "$PV_X"',
      action: "create",
      env: { PV_X: `$(touch ${marker})\`touch ${marker}\`` },
      sudo: false,
    });
    const r = sh(cmd);
    expect(r.stdout).toBe(`$(touch ${marker})\`touch ${marker}\``);
    expect(require("fs").existsSync(marker)).toBe(false);
  });

  it("rejects bad names, bad actions, PV_ACTION in env, empty scripts", () => {
    const base = { step: "s", script: "true", action: "create" as const, env: {}, sudo: false };
    expect(() => renderRemoteCommand({ ...base, step: "Bad Step" })).toThrow(/step name/);
    expect(() => renderRemoteCommand({ ...base, step: "a;b" })).toThrow(/step name/);
    expect(() => renderRemoteCommand({ ...base, action: "update" as never })).toThrow(/action/);
    expect(() => renderRemoteCommand({ ...base, env: { FOO: "1" } })).toThrow(/parameter name/);
    expect(() => renderRemoteCommand({ ...base, env: { "PV_A=B": "1" } })).toThrow(/parameter name/);
    expect(() => renderRemoteCommand({ ...base, env: { "PV_A B": "1" } })).toThrow(/parameter name/);
    expect(() => renderRemoteCommand({ ...base, env: { PV_ACTION: "delete" } })).toThrow(/PV_ACTION/);
    expect(() => renderRemoteCommand({ ...base, script: "  \n" })).toThrow(/empty script/);
    expect(() => renderRemoteCommand({ ...base, env: { PV_X: "a\0b" } })).toThrow(/NUL/);
  });
});

describe("renderStdin", () => {
  it("renders sorted NAME=value lines and never echoes a bad secret", () => {
    expect(renderStdin({ B: "x=y z", A: "it's $(no)" })).toBe("A=it's $(no)\nB=x=y z\n");
    expect(renderStdin({})).toBe("");
    let message = "";
    try {
      renderStdin({ HF_TOKEN: "hf_secret\nmore" });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/HF_TOKEN contains a newline/);
    expect(message).not.toContain("hf_secret");
    expect(() => renderStdin({ "bad name": "x" })).toThrow(/secret name/);
  });
});

describe("scriptHash / stepResult / readStepScript", () => {
  it("hashes with sha256 hex", () => {
    expect(scriptHash("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(scriptHash("a")).not.toBe(scriptHash("b"));
  });

  it("reads the last stdout line", () => {
    expect(stepResult("x\nchanged\n")).toBe("changed");
    expect(stepResult("unchanged")).toBe("unchanged");
    expect(stepResult("changed\nnoise\n")).toBeUndefined();
    expect(stepResult("")).toBeUndefined();
  });

  it("reads step scripts from components/host/scripts", () => {
    expect(readStepScript("swapfile")).toMatch(/^#!\/usr\/bin\/env bash/);
    expect(() => readStepScript("../etc/passwd")).toThrow(/bad step name/);
    expect(() => readStepScript("no-such-step")).toThrow(/no script/);
  });

  it("inlines the step library: every step runs as one self-contained script", () => {
    const fs = require("fs") as typeof import("fs");
    const dir = require("path").join(__dirname, "..", "..", "components", "host", "scripts");
    const steps = fs.readdirSync(dir).filter((f: string) => f.endsWith(".sh")).map((f: string) => f.replace(/\.sh$/, ""));
    expect(steps.length).toBeGreaterThanOrEqual(9);
    for (const step of steps) {
      const text = readStepScript(step);
      // Every step that runs on a host opens a journal and bounds its output.
      expect({ step, includes: /^# ---- included: lib\/txn\.sh ----$/m.test(text) }).toEqual({ step, includes: true });
      expect(text).toMatch(/^txn_begin\(\) \{$/m);
      expect(text).toMatch(/^txn_begin [a-z-]+/m);
      expect(text).not.toMatch(/^\. "\$\(dirname/m);
    }
    // The library is part of what is hashed: editing it re-runs every step.
    expect(readStepScript("swapfile")).toContain(fs.readFileSync(require("path").join(dir, "lib", "txn.sh"), "utf8").split("\n").slice(1).join("\n"));
  });
});
