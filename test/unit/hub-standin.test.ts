// The Hugging Face Hub stand-in (test/standin/hub.ts) answers as the Hub does
// for the endpoints our planner and the `hf` CLI use; these tests pin that, so
// a test that passes against it is not passing against a looser imitation.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startStandinHub, StandinHub } from "../standin/hub";

let root: string;
let hub: StandinHub;
const weights = Uint8Array.from({ length: 5000 }, (_, i) => i % 251);

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "hub-standin-"));
  for (const repo of ["acme/open", "acme/gated"]) {
    mkdirSync(join(root, repo), { recursive: true });
    writeFileSync(join(root, repo, "config.json"), '{"hidden_size": 64}');
    writeFileSync(join(root, repo, "model.safetensors"), weights);
  }
  hub = await startStandinHub({ root, gated: { "acme/gated": "hf_goodtoken" } });
});
afterAll(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

test("repo info names the commit and the files with their sizes", async () => {
  const r = await fetch(`${hub.url}/api/models/acme/open/revision/main`);
  expect(r.status).toBe(200);
  const body = await r.json();
  expect(body.sha).toBe(hub.commitOf("acme/open"));
  expect(body.siblings).toEqual([
    { rfilename: "config.json", size: 19 },
    { rfilename: "model.safetensors", size: 5000 },
  ]);
});

test("a file resolves by branch or by commit, with the commit header, and honours a Range", async () => {
  const sha = hub.commitOf("acme/open");
  const head = await fetch(`${hub.url}/acme/open/resolve/main/model.safetensors`, { method: "HEAD" });
  expect(head.headers.get("x-repo-commit")).toBe(sha);
  expect(head.headers.get("content-length")).toBe("5000");
  const part = await fetch(`${hub.url}/acme/open/resolve/${sha}/model.safetensors`, { headers: { Range: "bytes=4000-" } });
  expect(part.status).toBe(206);
  expect(new Uint8Array(await part.arrayBuffer())).toEqual(weights.subarray(4000));
});

test("a gated repo answers 401 GatedRepo without the token, 200 with it", async () => {
  const no = await fetch(`${hub.url}/acme/gated/resolve/main/config.json`);
  expect([no.status, no.headers.get("x-error-code")]).toEqual([401, "GatedRepo"]);
  const yes = await fetch(`${hub.url}/acme/gated/resolve/main/config.json`, { headers: { Authorization: "Bearer hf_goodtoken" } });
  expect(yes.status).toBe(200);
});

test.each([
  ["/acme/nothere/resolve/main/config.json", "RepoNotFound"],
  ["/acme/open/resolve/main/absent.json", "EntryNotFound"],
  ["/acme/open/resolve/0123456789abcdef0123456789abcdef01234567/config.json", "RevisionNotFound"],
])("%s is 404 %s", async (path, code) => {
  const r = await fetch(`${hub.url}${path}`);
  expect([r.status, r.headers.get("x-error-code")]).toEqual([404, code]);
});

test("the slow knob delays every answer", async () => {
  hub.set({ delayMs: 300 });
  const t0 = Date.now();
  await fetch(`${hub.url}/api/models/acme/open`);
  hub.set({ delayMs: 0 });
  expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
});
