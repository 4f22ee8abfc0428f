// The day-two commands' pure parts: reading a stack's state, the status
// verdicts, the repair command, log redaction, and the CLI's help, version
// and exit codes.
import { renderRemoteCommand } from "../../components/host/remote-command";
import { main } from "../../components/cli/main";
import { parseStepCommand, plain, secretValues, serversOfDeployment, shellWords } from "../../components/ops/state";
import { earlyoomArgs, evaluate, exitCodeOf, parseFacts, probeScript, renderedEnvFile, repairArgv } from "../../components/ops/status";
import { logsCommand, redactor, sinceProblem } from "../../components/ops/logs";
import { createHash } from "crypto";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");
const UNIT = "[Unit]\nDescription=x 'quoted' $HOME\n\n[Service]\nEnvironmentFile=/etc/pulumi-vllm/vllm.env\n";
const secret = (v: unknown) => ({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", plaintext: JSON.stringify(v) });
const conn = { host: "10.0.0.5", port: 22, user: "ubuntu", privateKey: secret("KEY"), hostKey: "ssh-ed25519 AAAA" };
const cmd = (step: string, env: Record<string, string>, sudo = true) => renderRemoteCommand({ step, script: "echo 'it''s'\n", action: "create", env, sudo });
const srv = "urn:pulumi:s::p::pulumi-vllm:index:VllmServer::rig";
function res(step: string, env: Record<string, string>, extra: Record<string, unknown> = {}) {
  const comp = `${srv}$pulumi-vllm:host:Step::rig-${step}`;
  return [
    { urn: comp, type: "pulumi-vllm:host:Step", parent: srv },
    { urn: `${comp}$command:remote:Command::rig-${step}`, type: "command:remote:Command", parent: comp, inputs: { create: cmd(step, env), connection: conn, ...extra } },
  ];
}
const deployment = {
  deployment: {
    resources: [
      { urn: srv, type: "pulumi-vllm:index:VllmServer", outputs: { endpoint: "http://127.0.0.1:8000/v1", apiKey: secret("sk-abcdef123456"), servedModelName: "m/x" } },
      ...res("swapfile", { PV_SWAP_PATH: "/swapfile", PV_SWAP_SIZE_MIB: "64" }),
      ...res("earlyoom", { PV_EARLYOOM_MEM_PERCENT: "5", PV_EARLYOOM_SWAP_PERCENT: "10", PV_EARLYOOM_AVOID: "^(sshd)$", PV_EARLYOOM_PREFER: "^(vllm)$", PV_APT_LOCK_TIMEOUT: "600" }),
      ...res("launch-unit", { PV_UNIT_NAME: "vllm.service", PV_UNIT_CONTENT: UNIT, PV_ENV_FILE: "/etc/pulumi-vllm/vllm.env" }, { stdin: secret("VLLM_API_KEY=sk-abcdef123456\n") }),
      ...res("readiness", { PV_BASE_URL: "http://127.0.0.1:8000", PV_SERVED_MODEL: "m/x" }),
    ],
  },
};

test("a rendered step command parses back to its step, sudo and parameters (quotes, newlines)", () => {
  const env = { PV_A: "it's a \"test\"\nline 2", PV_B: "" };
  expect(parseStepCommand(cmd("launch-unit", env))).toEqual({ step: "launch-unit", sudo: true, params: env });
  expect(parseStepCommand(cmd("swapfile", env, false))?.sudo).toBe(false);
  expect(parseStepCommand("echo hi")).toBeUndefined();
  expect(shellWords("a 'b c' d\\ e")).toEqual(["a", "b c", "d e"]);
  expect(plain({ a: secret("x"), b: [secret(1)] })).toEqual({ a: "x", b: [1] });
  expect(plain({ a: { "4dabf18193072939515e22adb298388d": "x", ciphertext: "zz" } })).toEqual({ a: undefined });
});

test("the servers of a deployment, each with its steps, connection and decrypted secrets", () => {
  const [s] = serversOfDeployment(deployment);
  expect(s.name).toBe("rig");
  expect(s.topology).toBe("single");
  expect(s.outputs.apiKey).toBe("sk-abcdef123456");
  expect(s.steps.map((x) => x.step)).toEqual(["swapfile", "earlyoom", "launch-unit", "readiness"]);
  expect(s.steps[2].secrets).toEqual({ VLLM_API_KEY: "sk-abcdef123456" });
  expect(s.steps[0].connection).toMatchObject({ host: "10.0.0.5", user: "ubuntu", privateKey: "KEY", hostKey: "ssh-ed25519 AAAA" });
  // the probe carries the key only inside its own text (stdin), quoted
  expect(probeScript(s)).toContain("R_KEY='sk-abcdef123456'");
});

function healthyFacts(): Record<string, string> {
  const eo = earlyoomArgs(serversOfDeployment(deployment)[0].steps[1].params);
  return {
    "probe.done": "1",
    "swapfile.active": "1",
    "swapfile.fstab": "1",
    "swapfile.bytes": String(64 * 1024 * 1024),
    "earlyoom.active": "active",
    "earlyoom.conf_lines": "1",
    "earlyoom.conf": eo.line,
    "earlyoom.argv": ["/usr/bin/earlyoom", ...eo.argv, ""].join("\x1f"),
    "launch-unit.unit_sha": sha(UNIT),
    "launch-unit.env_stat": "600 root",
    "launch-unit.env_sha": sha(renderedEnvFile("vllm.service", { VLLM_API_KEY: "sk-abcdef123456" })),
    "launch-unit.active": "active",
    "launch-unit.enabled": "enabled",
    "ready.health": "200",
    "ready.models_code": "200",
    "ready.models": Buffer.from(JSON.stringify({ data: [{ id: "m/x" }] })).toString("base64"),
    "metric.vllm:num_requests_running": "2",
  };
}

test("status: all ok exits 0; each kind of drift names exactly its step, exits 3 and replaces that step (the unit with its gate)", () => {
  const [s] = serversOfDeployment(deployment);
  const ok = evaluate(s, healthyFacts(), "t");
  expect(ok.steps.map((x) => x.state)).toEqual(["ok", "ok", "ok", "ok"]);
  expect(exitCodeOf([ok])).toBe(0);
  expect(ok.metrics["vllm:num_requests_running"]).toBe(2);
  const cases: [Record<string, string>, string, RegExp][] = [
    [{ "swapfile.active": "0" }, "swapfile", /not an active swap/],
    [{ "swapfile.fstab": "0" }, "swapfile", /has 0 lines/],
    [{ "earlyoom.conf": 'EARLYOOM_ARGS="-m 50"' }, "earlyoom", /expected/],
    [{ "launch-unit.unit_sha": "0".repeat(64) }, "launch-unit", /differs from the rendered unit/],
    [{ "launch-unit.env_stat": "644 root" }, "launch-unit", /mode\/owner 644 root/],
    [{ "launch-unit.active": "activating", "ready.health": "000", "ready.models_code": "000" }, "launch-unit", /is activating/],
    [{ "ready.health": "503" }, "readiness", /HTTP 503/],
    [{ "launch-unit.show": "SubState=running;NRestarts=1;" }, "launch-unit", /restarted 1 time\(s\) by systemd/],
  ];
  for (const [patch, step, why] of cases) {
    const st = evaluate(s, { ...healthyFacts(), ...patch }, "t");
    expect(st.steps.filter((x) => x.state === "drifted").map((x) => x.step)).toEqual([step]);
    expect(st.steps.find((x) => x.step === step)!.details.join(" ")).toMatch(why);
    expect(exitCodeOf([st])).toBe(3);
    const argv = repairArgv("prod", [st])!;
    const replaced = argv.filter((_, i) => argv[i - 1] === "--replace").map((u) => u.split("::").pop());
    expect(replaced).toEqual(step === "launch-unit" || step === "readiness" ? ["rig-launch-unit", "rig-readiness"] : [`rig-${step}`]);
    expect(argv.slice(0, 4)).toEqual(["pulumi", "up", "--stack", "prod"]);
  }
  // a probe that did not finish: every step failed, exit 1
  expect(exitCodeOf([evaluate(s, {}, "t")])).toBe(1);
});

test("the env file is rendered as launch-unit.sh writes it", () => {
  expect(renderedEnvFile("vllm.service", { VLLM_API_KEY: 'a"b$c`d\\e', HF_TOKEN: "t" })).toBe(
    '# Managed by pulumi-vllm (launch-unit.sh) for vllm.service. Root-only secrets; do not edit.\nHF_TOKEN="t"\nVLLM_API_KEY="a\\"b\\$c\\`d\\\\e"\n',
  );
  expect(parseFacts("a=b=c\nx\n")).toEqual({ a: "b=c" });
});

test("logs: journalctl of the stack's unit, with sudo when the steps use it; secrets redacted", () => {
  const [s] = serversOfDeployment(deployment);
  expect(logsCommand(s, { lines: 5, since: "10m" })).toBe("sudo -n 'journalctl' '-u' 'vllm.service' '--no-pager' '-o' 'short-iso' '-n' '5' '--since' '-10m'");
  const r = redactor(["sk-abcdef123456"]);
  expect(r("key sk-abcdef123456 and hf_abcdefghijklmnopqrstuvwxyz01 Bearer xyzxyzxyz1")).toBe("key [REDACTED] and [REDACTED] Bearer [REDACTED]");
  expect(sinceProblem("10m")).toBeUndefined();
  expect(sinceProblem("$(id)")).toMatch(/not a time/);
});

test("logs redacts the index login, whole and its password alone", () => {
  const d = { deployment: { resources: [...deployment.deployment.resources, ...res("uv-venv", { PV_UV_VERSION: "0.13.9" }, { stdin: secret("INDEX_CREDENTIALS=ci-bot:idx-token-123\n") })] } };
  const [s] = serversOfDeployment(d);
  expect(secretValues(s)).toEqual(expect.arrayContaining(["ci-bot:idx-token-123", "idx-token-123"]));
  expect(redactor(secretValues(s))("401 for https://ci-bot:idx-token-123@x and idx-token-123")).not.toContain("idx-token-123");
});

async function run(args: string[]) {
  let out = "";
  let err = "";
  const code = await main(args, { write: (s: string) => ((out += s), true) } as never, { write: (s: string) => ((err += s), true) } as never, process.cwd());
  return { code, out, err };
}

test("CLI: --help and -h exit 0 and list every command; --version; unknown commands and flags exit 1 with what to do", async () => {
  for (const h of ["--help", "-h"]) {
    const r = await run([h]);
    expect(r.code).toBe(0);
    for (const c of ["plan", "status", "logs", "smoke", "--version"]) expect(r.out).toContain(c);
  }
  expect(await run(["--version"])).toMatchObject({ code: 0, out: `pulumi-vllm ${require("../../package.json").version}\n` });
  expect((await run(["status", "--help"])).out).toMatch(/Exit codes: 0 all ok, 3 drift/);
  expect((await run(["plan", "--help"])).out).toMatch(/--gpu-name/);
  expect(await run(["frobnicate"])).toMatchObject({ code: 1, err: expect.stringMatching(/unknown command frobnicate/) });
  expect(await run(["status"])).toMatchObject({ code: 1, err: expect.stringMatching(/--stack: is required/) });
  expect(await run(["status", "--stak", "x"])).toMatchObject({ code: 1, err: expect.stringMatching(/did you mean --stack\?/) });
  expect(await run(["status", "--stack", "x", "--yes"])).toMatchObject({ code: 1, err: expect.stringMatching(/--yes: only means something with --repair/) });
  expect(await run(["logs", "--stack", "x", "-n", "zero"])).toMatchObject({ code: 1, err: expect.stringMatching(/--lines: "zero" is not a whole number/) });
});

test("ssh: the pinned host key only, the stack's key in a 0600 file removed on close, a jump host with its own pin", () => {
  const { SshSession } = require("../../components/ops/ssh");
  const fs = require("fs");
  const s = new SshSession({ host: "10.0.0.5", port: 2222, user: "ubuntu", privateKey: "KEY", hostKey: "ssh-ed25519 AAAAtarget", proxy: { host: "bastion", port: 22, user: "jump", hostKey: "ssh-ed25519 AAAAjump" } });
  try {
    const args: string[] = s.args;
    expect(args.slice(-1)).toEqual(["10.0.0.5"]);
    expect(args).toEqual(expect.arrayContaining(["-p", "2222", "-l", "ubuntu", "StrictHostKeyChecking=yes"]));
    const kh = args.find((a) => a.startsWith("UserKnownHostsFile="))!.split("=")[1];
    expect(fs.readFileSync(kh, "utf8")).toBe("[10.0.0.5]:2222 ssh-ed25519 AAAAtarget\n");
    const key = args[args.indexOf("-i") + 1];
    expect(fs.statSync(key).mode & 0o777).toBe(0o600);
    expect(args.join(" ")).not.toContain("KEY\n");
    const proxy = args.find((a) => a.startsWith("ProxyCommand="))!;
    // the jump host: its own known_hosts, the target's key (none of its own), -W to the target
    expect(proxy).toMatch(/^ProxyCommand=ssh .*'-l' 'jump' '-W' %h:%p 'bastion'$/);
    const jumpKh = /UserKnownHostsFile=([^']+)/.exec(proxy.slice(proxy.indexOf("jump.known_hosts") - 200))![1];
    expect(fs.readFileSync(jumpKh, "utf8")).toBe("bastion ssh-ed25519 AAAAjump\n");
    expect(s.warnings).toEqual([]);
  } finally {
    s.close();
  }
  expect(fs.existsSync(s.args[s.args.indexOf("-i") + 1])).toBe(false);
  const open = new SshSession({ host: "h", port: 22, user: "root" });
  open.close();
  expect(open.warnings.join()).toMatch(/no pinned host key/);
});

describe("status of the weights step: the probe in bash against a Hugging Face cache layout in a temp dir", () => {
  // The layout weights.sh leaves (hub/models--org--name: blobs, snapshots/<commit> of links to them; the
  // record under the state dir named by the cache's sha256), made here by hand and changed per case.
  const fs = require("fs") as typeof import("fs");
  const os = require("os") as typeof import("os");
  const path = require("path") as typeof import("path");
  const { execFileSync } = require("child_process") as typeof import("child_process");
  const COMMIT = "a".repeat(40);
  let dir: string;
  let cache: string;
  let snap: string;
  const weightsServer = (params: Record<string, string>) => ({
    name: "rig", topology: "single" as const, outputs: {}, steps: [{ step: "weights", urn: "urn:w", secrets: {}, connection: undefined as never, sudo: false, params }],
  });
  const run = (params: Record<string, string>) => {
    const s = weightsServer(params);
    const facts = parseFacts(execFileSync("bash", ["-s"], { input: probeScript(s as never), encoding: "utf8" }));
    return evaluate(s as never, facts, "test").steps[0];
  };
  const params = () => ({ PV_MODEL_ID: "acme/tiny", PV_CACHE_DIR: cache, PV_STATE_DIR: path.join(dir, "state"), PV_REMOVE_CACHE: "0" });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "pv-status-weights-"));
    cache = path.join(dir, "hf");
    const repo = path.join(cache, "hub", "models--acme--tiny");
    snap = path.join(repo, "snapshots", COMMIT);
    fs.mkdirSync(path.join(repo, "blobs"), { recursive: true });
    fs.mkdirSync(snap, { recursive: true });
    for (const [name, body] of [["config.json", "{}\n"], ["model.safetensors", "x".repeat(1000)]]) {
      const blob = path.join(repo, "blobs", createHash("sha256").update(body).digest("hex"));
      fs.writeFileSync(blob, body);
      fs.symlinkSync(path.relative(snap, blob), path.join(snap, name));
    }
    const state = path.join(dir, "state", "weights", sha(cache).slice(0, 16));
    fs.mkdirSync(state, { recursive: true });
    fs.writeFileSync(path.join(state, "current.state"), `model=acme/tiny\nrevision=main\ncommit=${COMMIT}\nbytes=1003\n`);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test("as verified: ok, with the commit, the files and the bytes", () => {
    const r = run(params());
    expect(r.state).toBe("ok");
    expect(r.details[0]).toBe(`acme/tiny at ${COMMIT.slice(0, 12)}: 2 files, 1003 bytes, as verified`);
  });
  test("a removed blob (hf cache delete, rm): drift naming the dangling files; the repair replaces the weights step alone", () => {
    const blobs = path.join(cache, "hub", "models--acme--tiny", "blobs");
    fs.rmSync(path.join(blobs, fs.readdirSync(blobs).find((b) => fs.statSync(path.join(blobs, b)).size === 1000)!));
    const r = run(params());
    expect(r.state).toBe("drifted");
    expect(r.details).toEqual([`1 of 2 files of acme/tiny at ${COMMIT.slice(0, 12)} point at removed blobs`]);
    expect(r.urn).toBe("urn:w");
  });
  test("a truncated file: fewer bytes than verified", () => {
    const link = path.join(snap, "model.safetensors");
    fs.writeFileSync(path.resolve(snap, fs.readlinkSync(link)), "x".repeat(10));
    expect(run(params()).details).toEqual(["the snapshot of acme/tiny holds 13 bytes, 1003 were verified"]);
  });
  test("the snapshot gone, the record gone, a record of another model: each a drift that says so", () => {
    fs.rmSync(snap, { recursive: true });
    expect(run(params()).details[0]).toBe(`the snapshot of acme/tiny at ${COMMIT.slice(0, 12)} is gone from ${cache}/hub`);
    expect(run({ ...params(), PV_MODEL_ID: "acme/other" }).details[0]).toBe(`the record for ${cache} is of acme/tiny, not acme/other`);
    fs.rmSync(path.join(dir, "state"), { recursive: true });
    expect(run(params()).details[0]).toBe(`no verified download of acme/tiny is recorded for ${cache} (the weights step's record is gone)`);
  });
  test("with removeModelCache the drift says the repair fetches the model in full", () => {
    fs.rmSync(snap, { recursive: true });
    expect(run({ ...params(), PV_REMOVE_CACHE: "1" }).details[1]).toMatch(/fetched again in full/);
  });
  test("a model path on the host: ok while it holds config.json", () => {
    expect(run({ ...params(), PV_MODEL_ID: snap }).state).toBe("ok");
    fs.rmSync(path.join(snap, "config.json"));
    expect(run({ ...params(), PV_MODEL_ID: snap }).details[0]).toBe(`${snap}/config.json is missing: model.id names a path on the host that holds no model`);
  });
});
