// Host tier: components/host/scripts/weights.sh on a real Debian bookworm over
// SSH, downloading with the venv's real `hf` (huggingface_hub, as vLLM brings
// it) from the Hugging Face Hub stand-in (test/standin/hub.ts) on 127.0.0.1,
// which the sandbox reaches (it shares this machine's network).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { bootSandbox, diffSnapshots, fileTimer, freePort, hostSnapshot, runStep, Sandbox, shutdownSandbox, sshOk, sshRun } from "./sandbox";
import { expectStep, installStandinWithHub, setupVenv, trustMachineCAs, VENV, writeHubRepo } from "../standin/fixtures";
import { startStandinHub, StandinHub } from "../standin/hub";
import { renderStdin } from "../../components/host/remote-command";

jest.setTimeout(600_000);
const timer = fileTimer("weights.test.ts");
const CACHE = "/var/cache/pv-weights/huggingface";
const TOKEN = `hf_weights${Math.random().toString(36).slice(2, 12)}Secret`;
const MiB = 1024 * 1024;
let sb: Sandbox;
let hub: StandinHub;
let root: string;

const env = (over: Record<string, string> = {}) => ({
  PV_MODEL_ID: "acme/tiny",
  PV_CACHE_DIR: CACHE,
  PV_VENV_PATH: VENV,
  PV_HF_ENDPOINT: hub.url,
  PV_PROGRESS_SECONDS: "1",
  ...over,
});
const weights = (over: Record<string, string> = {}, stdin?: string, timeoutMs?: number) =>
  runStep(sb, { step: "weights", action: "create", env: env(over), stdin, timeoutMs });
const removeStep = (over: Record<string, string> = {}) => runStep(sb, { step: "weights", action: "delete", env: env(over) });
const repoDir = (repo: string, cache = CACHE) => `${cache}/hub/models--${repo.replace("/", "--")}`;
const fileRequests = (repo: string) => hub.requests.filter((r) => r.method === "GET" && r.path.startsWith(`/${repo}/resolve/`));
/** Pids of the sandbox's processes whose command line holds `needle` (a minimal host has no pgrep); the
 * pattern is split in two quoted halves so that the searching shell's own command line does not match. */
const pidsOf = async (needle: string): Promise<string[]> =>
  (await sshOk(sb, `for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null) || continue; case $c in *"${needle.slice(0, 1)}""${needle.slice(1)}"*) echo \${p#/proc/};; esac; done`))
    .split("\n")
    .filter(Boolean);
const sha256 = (file: string) => require("crypto").createHash("sha256").update(fs.readFileSync(file)).digest("hex");

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "pv-weights-hub-"));
  writeHubRepo(root, "acme/tiny", 2 * MiB, 1);
  // huggingface_hub writes a download in 10 MB chunks: a part exists only past the first one
  writeHubRepo(root, "acme/big", 24 * MiB, 2);
  writeHubRepo(root, "acme/gated", 256 * 1024, 3);
  writeHubRepo(root, "acme/mine", 64 * 1024, 4);
  writeHubRepo(root, "acme/fresh", 64 * 1024, 5);
  hub = await startStandinHub({ root, gated: { "acme/gated": TOKEN } });
  sb = await bootSandbox("weights-h");
  timer.mark("boot");
  await trustMachineCAs(sb);
  await setupVenv(sb);
  await installStandinWithHub(sb, "0.11.0");
  timer.mark("venv + stand-in + huggingface_hub");
});

afterAll(async () => {
  if (sb) await shutdownSandbox(sb);
  if (hub) await hub.close();
  if (root) fs.rmSync(root, { recursive: true, force: true });
  timer.done();
});

test("downloads the model at its commit with progress lines, verifies it and records the commit", async () => {
  hub.set({ bytesPerSecond: 512 * 1024 });
  const r = await weights();
  hub.set({ bytesPerSecond: 0 });
  expectStep(r, "changed");
  const commit = hub.commitOf("acme/tiny");
  expect(r.stdout).toContain(`commit=${commit}\n`);
  expect(r.stdout).toContain(`bytes=${2 * MiB + fs.statSync(path.join(root, "acme/tiny/config.json")).size + fs.statSync(path.join(root, "acme/tiny/tokenizer.json")).size}\n`);
  expect(r.stderr.match(/weights: downloaded [0-9.]+ [KM]iB of 2\.0 MiB \(\d+%\)/g)?.length ?? 0).toBeGreaterThanOrEqual(2);
  expect(r.stderr).toMatch(/verified 3 files .* sizes and the sha256 of the 3 fetched/);
  const snap = `${repoDir("acme/tiny")}/snapshots/${commit}`;
  expect((await sshOk(sb, `sha256sum < ${snap}/model.safetensors`)).split(" ")[0]).toBe(sha256(path.join(root, "acme/tiny/model.safetensors")));
  expect((await sshOk(sb, `cat ${repoDir("acme/tiny")}/refs/main`)).trim()).toBe(commit);
  // readable by any user vLLM may run as
  expect(await sshOk(sb, `stat -L -c %a ${CACHE} ${CACHE}/hub ${snap}/model.safetensors`)).toBe("755\n755\n644\n");
});

test("vLLM offline (the stand-in with HF_HUB_OFFLINE=1) finds the files in the same cache, and fails without them", async () => {
  const port = await freePort();
  const run = (model: string) =>
    sshRun(sb, `HF_HUB_OFFLINE=1 HF_HOME=${CACHE} VLLM_STANDIN_RECORD=/tmp/offline.json timeout 4 ${VENV}/bin/vllm serve ${model} --port ${port}; echo "exit=$?"`);
  const ok = await run("acme/tiny");
  expect(ok.stdout).toContain("exit=124"); // served until the timeout
  const rec = JSON.parse(await sshOk(sb, "cat /tmp/offline.json"));
  expect(rec.weights.commit).toBe(hub.commitOf("acme/tiny"));
  expect(rec.weights.files.map((f: { path: string }) => f.path)).toEqual(["config.json", "model.safetensors", "tokenizer.json"]);
  const missing = await run("acme/absent");
  expect(missing.stdout).toContain("exit=1");
  expect(missing.stderr).toMatch(/couldn't find them in the cached files/);
});

test("a second run changes nothing on the host and downloads nothing", async () => {
  const paths = [CACHE, "/var/lib/pulumi-vllm"];
  const before = await hostSnapshot(sb, paths);
  const gets = fileRequests("acme/tiny").length;
  const r = await weights();
  expectStep(r, "unchanged");
  expect(r.stdout).toContain(`commit=${hub.commitOf("acme/tiny")}\n`);
  expect(diffSnapshots(before, await hostSnapshot(sb, paths))).toEqual([]);
  expect(fileRequests("acme/tiny").length).toBe(gets);
});

test("a download killed mid-way keeps its part; the next run resumes it with a Range request", async () => {
  hub.set({ bytesPerSecond: 2 * MiB });
  const run = weights({ PV_MODEL_ID: "acme/big" });
  // once the first chunk is on disk, the download dies (as with a dropped connection)
  await sshOk(
    sb,
    `for i in $(seq 1 600); do s=$(stat -c %s ${repoDir("acme/big")}/blobs/*.incomplete 2>/dev/null || echo 0); [ "$s" -ge 10000000 ] && exit 0; sleep 0.1; done; exit 1`,
  );
  await sshOk(sb, `kill -TERM ${(await pidsOf("bin/hf download acme/big")).join(" ")}`);
  const stopped = await run;
  hub.set({ bytesPerSecond: 0 });
  expect(stopped.code).not.toBe(0);
  expect(stopped.stderr).toMatch(/weights: downloaded [0-9.]+ (B|KiB|MiB) of 24\.0 MiB \(\d+%\)/);
  expect(stopped.stderr).toMatch(/hf download acme\/big failed \(see above\); the files fetched so far stay in .* and the next run resumes/);
  const part = Number((await sshOk(sb, `stat -c %s ${repoDir("acme/big")}/blobs/*.incomplete`)).trim());
  expect(part).toBeGreaterThanOrEqual(10 * 1000 * 1000);
  expect(part).toBeLessThan(24 * MiB);
  // the record of the failed run is rolled back; the recorded model stays acme/tiny
  expect(await sshOk(sb, "cat /var/lib/pulumi-vllm/weights/*/current.state")).toContain("model=acme/tiny\n");

  const r = await weights({ PV_MODEL_ID: "acme/big" });
  expectStep(r, "changed");
  const resumed = fileRequests("acme/big").filter((q) => q.path.endsWith("/model.safetensors")).pop()!;
  expect(resumed.range).toMatch(/^bytes=\d+-$/);
  expect(Number(/^bytes=(\d+)-$/.exec(resumed.range!)![1])).toBeGreaterThanOrEqual(part);
  const commit = hub.commitOf("acme/big");
  expect((await sshOk(sb, `sha256sum < ${repoDir("acme/big")}/snapshots/${commit}/model.safetensors`)).split(" ")[0]).toBe(
    sha256(path.join(root, "acme/big/model.safetensors")),
  );
  expect((await sshRun(sb, `ls ${repoDir("acme/big")}/blobs/*.incomplete`)).code).not.toBe(0);
});

test("a step stopped from outside (a lost session's SIGTERM) stops its download too", async () => {
  hub.set({ bytesPerSecond: 256 * 1024 });
  const run = weights({ PV_MODEL_ID: "acme/big", PV_CACHE_DIR: "/var/cache/pv-stopped" });
  let pids: string[] = [];
  for (let i = 0; i < 200 && pids.length === 0; i++) pids = await pidsOf("bin/hf download acme/big");
  expect(pids).not.toEqual([]);
  await sshOk(sb, `kill -TERM ${(await pidsOf("pv-weights")).join(" ")}`);
  const r = await run;
  hub.set({ bytesPerSecond: 0 });
  expect(r.code).toBe(143);
  expect(r.stderr).toMatch(/rollback: stop_download/);
  await new Promise((res) => setTimeout(res, 1000));
  expect(await pidsOf("bin/hf download")).toEqual([]);
});

test("a new commit of the model (a changed revision) downloads it; the old one stays", async () => {
  const old = hub.commitOf("acme/tiny");
  fs.writeFileSync(path.join(root, "acme/tiny/tokenizer.json"), JSON.stringify({ version: "1.1" }));
  const commit = hub.commitOf("acme/tiny");
  expect(commit).not.toBe(old);
  const r = await weights({ PV_REVISION: "main" });
  expectStep(r, "changed");
  expect(r.stdout).toContain(`commit=${commit}\n`);
  // only the changed file was fetched
  expect(r.stderr).toMatch(/: [0-9.]+ B of 2\.0 MiB to fetch \(1 of 3 files; 3 new in this commit\)/);
  await sshOk(sb, `test -f ${repoDir("acme/tiny")}/snapshots/${old}/model.safetensors`);
  expect((await sshOk(sb, `cat ${repoDir("acme/tiny")}/refs/main`)).trim()).toBe(commit);
  // pinned to the commit: unchanged, without a download
  expectStep(await weights({ PV_REVISION: commit }), "unchanged");
});

test("a disk too small is refused before a byte is downloaded", async () => {
  await sshOk(sb, "mkdir -p /mnt/pv-small && mount -t tmpfs -o size=1m tmpfs /mnt/pv-small");
  try {
    const gets = fileRequests("acme/big").length;
    const r = await weights({ PV_MODEL_ID: "acme/big", PV_CACHE_DIR: "/mnt/pv-small/hf" });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/not enough disk for acme\/big: 24\.0 MiB left to download into \/mnt\/pv-small\/hf and [0-9.]+ [KM]iB free there \(nothing was downloaded\) -> free space on that filesystem, or set host.cacheDir to a larger one/);
    expect(fileRequests("acme/big").length).toBe(gets);
    expect((await sshOk(sb, "find /mnt/pv-small | wc -l")).trim()).toBe("1");
  } finally {
    await sshRun(sb, "umount /mnt/pv-small");
  }
});

test("a gated model without a token is refused with the fix, before any file is fetched", async () => {
  const r = await weights({ PV_MODEL_ID: "acme/gated" });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/acme\/gated is gated: downloading it needs a Hugging Face token .* -> pulumi config set --secret pulumi-vllm:hfToken <token>/);
  expect(fileRequests("acme/gated")).toEqual([]);
  const wrong = await weights({ PV_MODEL_ID: "acme/gated" }, renderStdin({ HF_TOKEN: "hf_wrongToken123" }));
  expect(wrong.stderr).toMatch(/the Hugging Face token given has no access to it/);
});

test("a gated model with the token downloads; the token is in no argv, output, file or state", async () => {
  const cache = "/var/cache/pv-gated";
  const watch = sshOk(sb, `for i in $(seq 1 100); do cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; echo; sleep 0.1; done`);
  hub.set({ bytesPerSecond: 128 * 1024 });
  const r = await weights({ PV_MODEL_ID: "acme/gated", PV_CACHE_DIR: cache, PV_CACHE_OWNER: "nobody" }, renderStdin({ HF_TOKEN: TOKEN }));
  hub.set({ bytesPerSecond: 0 });
  expectStep(r, "changed");
  expect(hub.requests.filter((q) => q.path.startsWith("/acme/gated/resolve/") && q.authorized).length).toBeGreaterThan(0);
  const argv = await watch;
  expect(argv).toMatch(/hf download acme\/gated/);
  for (const text of [argv, r.stdout, r.stderr, r.command]) expect(text).not.toContain(TOKEN);
  expect((await sshRun(sb, `grep -rl ${TOKEN} ${cache} /var/lib/pulumi-vllm /tmp /root`)).stdout).toBe("");
  expect(await sshOk(sb, `stat -c %U ${cache} ${repoDir("acme/gated", cache)}/snapshots`)).toBe("nobody\nnobody\n");
});

test("delete keeps the weights by default; with PV_REMOVE_CACHE=1 it removes only the models the step downloaded", async () => {
  // a model someone put into the cache by hand: never the step's to remove
  await sshOk(sb, `HF_HOME=${CACHE} HF_ENDPOINT=${hub.url} ${VENV}/bin/hf download acme/mine >/dev/null 2>&1`);
  expectStep(await removeStep(), "changed");
  await sshOk(sb, `test -d ${repoDir("acme/tiny")} && test -d ${repoDir("acme/big")}`);
  // this cache's record is gone (other caches of this sandbox have records of their own)
  expect(await sshOk(sb, "cat /var/lib/pulumi-vllm/weights/*/current.state")).not.toMatch(/acme\/(tiny|big)/);

  // the files were kept, so nothing is fetched; the delete above forgot them, so they are no longer the step's
  expectStep(await weights(), "changed");
  expectStep(await weights({ PV_MODEL_ID: "acme/fresh" }), "changed");
  const r = await removeStep({ PV_REMOVE_CACHE: "1" });
  expectStep(r, "changed");
  expect(r.stderr).toMatch(/removed .*models--acme--fresh/);
  await sshOk(sb, `test -d ${repoDir("acme/mine")} && test -d ${repoDir("acme/tiny")} && test -d ${repoDir("acme/big")}`);
  expect((await sshRun(sb, `test -e ${repoDir("acme/fresh")}`)).code).not.toBe(0);
  expectStep(await removeStep({ PV_REMOVE_CACHE: "1" }), "unchanged");
});

test("with PV_REMOVE_CACHE=1 a model change removes the model the step downloaded before", async () => {
  const cache = "/var/cache/pv-switch";
  expectStep(await weights({ PV_CACHE_DIR: cache, PV_REMOVE_CACHE: "1" }), "changed");
  const r = await weights({ PV_CACHE_DIR: cache, PV_REMOVE_CACHE: "1", PV_MODEL_ID: "acme/big" });
  expectStep(r, "changed");
  expect((await sshRun(sb, `test -e ${repoDir("acme/tiny", cache)}`)).code).not.toBe(0);
  await sshOk(sb, `test -d ${repoDir("acme/big", cache)}`);
  expectStep(await removeStep({ PV_CACHE_DIR: cache, PV_REMOVE_CACHE: "1" }), "changed");
  expect((await sshOk(sb, `ls -A ${cache}/hub | grep -v '^.locks$' || true`)).trim()).toBe("");
});

test("a model given as a path on the host downloads nothing; a path without config.json is refused", async () => {
  await sshOk(sb, "mkdir -p /opt/models/local && echo '{}' > /opt/models/local/config.json");
  expectStep(await weights({ PV_MODEL_ID: "/opt/models/local" }), "unchanged");
  const r = await weights({ PV_MODEL_ID: "/opt/models/none" });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/\/opt\/models\/none is a path on the host and holds no config\.json/);
});
