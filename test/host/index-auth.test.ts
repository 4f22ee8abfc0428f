// Host tier: a package index that needs a login (the secret indexCredentials),
// on a real Debian bookworm over SSH. The index is a STAND-IN
// (test/standin/index-server.ts) on this machine, which the sandbox reaches on
// 127.0.0.1: it serves the uv wheel (from PyPI) and the vllm-standin wheel
// behind HTTP Basic auth. uv-venv.sh fetches uv from it with python's urllib,
// vllm-install.sh installs the stand-in with uv from it; the login travels on
// stdin only. While each step runs, `ps -eo args` is sampled on the host: the
// token must be in no process's argv, no output and no file the steps write.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { bootSandbox, diffSnapshots, fileTimer, hostSnapshot, psDuring, runStep, Sandbox, shutdownSandbox, sshRun } from "./sandbox";
import { renderStdin } from "../../components/host/remote-command";
import { expectStep, STANDIN_DIR, UV_BIN, UV_VERSION } from "../standin/fixtures";
import { fetchUvWheel, startIndex, StandinIndex } from "../standin/index-server";
import { spawnSync } from "child_process";

jest.setTimeout(600_000);
const timer = fileTimer("index-auth.test.ts");
let sb: Sandbox;
let idx: StandinIndex;
let wheels: string;

const USER = "ci-bot";
const TOKEN = "idxTok-9f3c2a7e51b84d06"; // unique: found anywhere, it leaked
const ROTATED = "idxTok-rotated-0c1d2e3f4a5b";
const WRONG = "idxTok-WRONG-77aa88bb99cc";
const login = (password: string, user = USER) => renderStdin({ INDEX_CREDENTIALS: `${user}:${password}` });
const VENVS = "/opt/pulumi-vllm/venvs";
const OWNED = ["/var/lib/pulumi-vllm", "/opt/pulumi-vllm"];

const installEnv = (version: string, over: Record<string, string> = {}) => ({
  PV_VENVS_DIR: VENVS,
  PV_VENV_PATH: `${VENVS}/${version}-py3.11`,
  PV_PYTHON: "3.11",
  PV_KEEP_VENVS: "2",
  PV_UV_BIN: UV_BIN(),
  PV_PACKAGE: `vllm-standin==${version}`,
  PV_DIST_NAME: "vllm-standin",
  PV_DIST_VERSION: version,
  PV_IMPORT_NAME: "vllm_standin",
  PV_INDEX_URL: idx.url,
  PV_NO_INDEX: "0",
  ...over,
});

/** Files under the steps' own directories holding `secret` (grep -F: literal). */
const filesHolding = async (secret: string) => (await sshRun(sb, `grep -rlF -- '${secret}' ${OWNED.join(" ")} 2>/dev/null`)).stdout.trim();
const leaks = (text: string) => [TOKEN, ROTATED, WRONG].filter((t) => text.includes(t));

beforeAll(async () => {
  wheels = fs.mkdtempSync(path.join(os.tmpdir(), "pv-indexauth-wheels-"));
  fetchUvWheel(UV_VERSION, wheels);
  for (const v of ["0.11.0", "0.12.0"]) {
    const r = spawnSync("python3", [path.join(STANDIN_DIR, "build-wheel.py"), "--version", v, "--out", wheels], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`build-wheel.py ${v}: ${r.stderr}`);
  }
  // each answer a little late: the steps' processes live long enough for ps to see them
  idx = await startIndex({ dir: wheels, user: USER, password: TOKEN, delayMs: 400 });
  timer.mark("index");
  sb = await bootSandbox("indexauth");
  timer.mark("boot");
});

afterAll(async () => {
  if (sb) await shutdownSandbox(sb);
  if (idx) await idx.close();
  if (wheels) fs.rmSync(wheels, { recursive: true, force: true });
  timer.done();
});

test("the stand-in index refuses a request without the login", async () => {
  const r = await sshRun(sb, `curl -s -o /dev/null -w '%{http_code}' ${idx.url}/uv/`);
  expect(r.stdout).toBe("401");
});

test("uv-venv: uv from the index behind a login, sent as Basic auth; the token in no argv, output or file", async () => {
  const n = idx.requests.length;
  const { value: run, ps } = await psDuring(sb, () => runStep(sb, { step: "uv-venv", action: "create", env: { PV_UV_VERSION: UV_VERSION, PV_UV_ONLY: "1", PV_UV_INDEX_URL: idx.url }, stdin: login(TOKEN) }));
  expectStep(run, "changed");
  expect(run.stderr).toMatch(/with the login of indexCredentials/);
  expect(run.stderr).toMatch(/sha256 [0-9a-f]{64} verified/);
  const seen = idx.requests.slice(n);
  expect(seen.map((q) => q.path)).toEqual(expect.arrayContaining(["/simple/uv/", expect.stringMatching(/^\/files\/uv-.*\.whl$/)]));
  expect(seen.filter((q) => q.auth !== "ok")).toEqual([]); // sent up front, every request
  expect(ps).toMatch(/python3 -/); // the sampler saw the download run
  expect(leaks(ps)).toEqual([]);
  expect(leaks(run.stdout + run.stderr + run.command)).toEqual([]);
  expect(await filesHolding(TOKEN)).toBe("");
  timer.mark("uv-venv");
});

test("uv-venv: a wrong login, or none, fails with the fix and shows no token; nothing installed", async () => {
  const env = { PV_UV_VERSION: UV_VERSION, PV_UV_ONLY: "1", PV_UV_INDEX_URL: idx.url, PV_UV_DIR: "/opt/pulumi-vllm/uv-other", PV_STATE_DIR: "/var/lib/pulumi-vllm/other" };
  const wrong = await runStep(sb, { step: "uv-venv", action: "create", env, stdin: login(WRONG) });
  expect(wrong.code).not.toBe(0);
  expect(wrong.stderr).toMatch(/refused the login of indexCredentials \(HTTP 401\) -> .*pulumi config set --secret indexCredentials '<user>:<password>'/);
  expect(leaks(wrong.stdout + wrong.stderr)).toEqual([]);
  const none = await runStep(sb, { step: "uv-venv", action: "create", env });
  expect(none.code).not.toBe(0);
  expect(none.stderr).toMatch(/needs a login \(HTTP 401\) -> pulumi config set --secret indexCredentials/);
  expect((await sshRun(sb, "test -e /opt/pulumi-vllm/uv-other || test -e /var/lib/pulumi-vllm/other")).code).not.toBe(0);
});

test("vllm-install: the stand-in from the index behind a login; uv has it in its environment, never in argv", async () => {
  const n = idx.requests.length;
  const { value: run, ps } = await psDuring(sb, () => runStep(sb, { step: "vllm-install", action: "create", env: installEnv("0.11.0"), stdin: login(TOKEN) }));
  expectStep(run, "changed");
  expect(run.stderr).toMatch(/vllm --version: 0\.11\.0 \(vllm-standin, not vLLM\)/);
  expect(run.stderr).toContain(`(index ${idx.url}, with the login of indexCredentials)`);
  const seen = idx.requests.slice(n);
  expect(seen).toEqual(expect.arrayContaining([{ path: "/simple/vllm-standin/", auth: "ok" }, { path: "/files/vllm_standin-0.11.0-py3-none-any.whl", auth: "ok" }]));
  expect(ps).toMatch(/\/uv pip install --python \S+ -- vllm-standin==0\.11\.0/); // uv ran while sampled
  expect(ps).not.toContain("--index-url");
  expect(leaks(ps)).toEqual([]);
  expect(leaks(run.stdout + run.stderr + run.command)).toEqual([]);
  expect(await filesHolding(TOKEN)).toBe("");
  // measured, not a place the steps own: uv's cache (root's) does not keep the login either
  expect((await sshRun(sb, `grep -rlF -- '${TOKEN}' /root/.cache /root/.local /tmp 2>/dev/null`)).stdout.trim()).toBe("");
  timer.mark("vllm-install");
});

test("vllm-install: a wrong login fails with uv's error redacted and the fix; no venv is left", async () => {
  const r = await runStep(sb, { step: "vllm-install", action: "create", env: installEnv("0.12.0"), stdin: login(WRONG) });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/the index refused the login of indexCredentials \(HTTP 401\) -> .*pulumi config set --secret indexCredentials '<user>:<password>'/);
  expect(leaks(r.stdout + r.stderr)).toEqual([]);
  expect((await sshRun(sb, `test -e ${VENVS}/0.12.0-py3.11`)).code).not.toBe(0);
  // without a login: the same, saying that one is needed
  const none = await runStep(sb, { step: "vllm-install", action: "create", env: installEnv("0.12.0") });
  expect(none.code).not.toBe(0);
  expect(none.stderr).toMatch(/the index needs a login \(HTTP 401\) -> pulumi config set --secret indexCredentials/);
});

test("a rotated login: both steps run again (what an update does) and install nothing; the new login then works", async () => {
  idx.setLogin(USER, ROTATED);
  const installed = [VENVS, "/opt/pulumi-vllm/uv", "/var/lib/pulumi-vllm/vllm-install", "/var/lib/pulumi-vllm/uv-venv"];
  const snap = await hostSnapshot(sb, installed);
  const n = idx.requests.length;
  expectStep(await runStep(sb, { step: "uv-venv", action: "create", env: { PV_UV_VERSION: UV_VERSION, PV_UV_ONLY: "1", PV_UV_INDEX_URL: idx.url }, stdin: login(ROTATED) }), "unchanged");
  expectStep(await runStep(sb, { step: "vllm-install", action: "create", env: installEnv("0.11.0"), stdin: login(ROTATED) }), "unchanged");
  expect(idx.requests.length).toBe(n); // nothing was fetched
  expect(diffSnapshots(snap, await hostSnapshot(sb, installed))).toEqual([]);
  const r = await runStep(sb, { step: "vllm-install", action: "create", env: installEnv("0.12.0"), stdin: login(ROTATED) });
  expectStep(r, "changed");
  expect(leaks(r.stdout + r.stderr)).toEqual([]);
  expect(await filesHolding(ROTATED)).toBe("");
});
