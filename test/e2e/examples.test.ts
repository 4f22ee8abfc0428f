// The examples as a user runs them: the package from `npm pack`'s tarball,
// installed into each example's own directory, run by the real engine under
// Pulumi's TypeScript support, on sandbox hosts; then destroyed.
import { execFileSync } from "child_process";
import * as fs from "fs";
import { Stack } from "@pulumi/pulumi/automation";
import { bootSandbox, freePort, Sandbox, shutdownSandbox, sshOk, sshRun } from "../host/sandbox";
import { putStandinWheels, trustMachineCAs } from "../standin/fixtures";
import { ensureEngine, stackConfigFor } from "./engine";
import { installExample, openProjectStack, packLibrary } from "./projects";

jest.setTimeout(30 * 60 * 1000);

let tarball: string;
const boxes: { sb: Sandbox; port: number }[] = [];
const stacks: Stack[] = [];
const dirs: string[] = [];

/** The shared settings of the dev stack (the stand-in "vLLM"), for a box. */
function settingsFor(sb: Sandbox, port: number) {
  const c = stackConfigFor(sb, port);
  return { hardware: c.hardware, model: c.model, serving: c.serving, vllm: c.vllm, host: c.host, connection: c.connection };
}

function without<T extends Record<string, unknown>>(o: T, key: string): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => k !== key));
}

async function models(endpoint: string, key: string): Promise<number> {
  return (await fetch(`${endpoint}/models`, { headers: { Authorization: `Bearer ${key}` } })).status;
}

beforeAll(async () => {
  tarball = packLibrary();
  for (const name of ["ex-a", "ex-b"]) {
    const sb = await bootSandbox(name);
    await trustMachineCAs(sb);
    putStandinWheels(sb, ["0.11.0"]);
    boxes.push({ sb, port: await freePort() });
  }
});

afterAll(async () => {
  for (const s of stacks.reverse()) await s.workspace.removeStack(s.name, { force: true }).catch(() => undefined);
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  for (const b of boxes) await shutdownSandbox(b.sb).catch(() => undefined);
  if (tarball) fs.rmSync(tarball, { force: true });
});

test("the tarball holds the compiled library and its step scripts, not the sources or tests", () => {
  const list: string[] = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).trim().split("\n");
  expect(list).toEqual(expect.arrayContaining(["package/dist/src/index.js", "package/dist/src/index.d.ts", "package/components/host/scripts/launch-unit.sh"]));
  expect(list.filter((f) => /\.go$|\/test\/|Pulumi\.[a-z]+\.yaml$|^package\/index\.ts$/.test(f))).toEqual([]);
});

test("two-boxes: two VllmServers on two hosts in one program, each serving; destroy cleans both", async () => {
  const dir = installExample("two-boxes", tarball);
  dirs.push(dir);
  const [a, b] = boxes.map(({ sb, port }) => settingsFor(sb, port));
  const stack = await openProjectStack(dir, "e2e", {
    boxes: [
      { name: "box-a", connection: a.connection, serving: { port: a.serving.port }, host: { swap: a.host.swap } },
      { name: "box-b", connection: b.connection, serving: { port: b.serving.port }, host: { swap: b.host.swap } },
    ],
    hardware: a.hardware,
    model: a.model,
    serving: without(a.serving, "port"),
    vllm: a.vllm,
    host: without(a.host, "swap"),
  });
  stacks.push(stack);
  await stack.up();
  const out = await stack.outputs();
  expect(out.endpoints.value).toEqual(boxes.map((x) => `http://127.0.0.1:${x.port}/v1`));
  // each key is a secret inside the exported list: the state holds neither in clear text
  const exported = execFileSync("pulumi", ["stack", "export", "--stack", "e2e"], { cwd: dir, env: { ...process.env, ...ensureEngine() }, encoding: "utf8", maxBuffer: 1 << 28 });
  for (const key of out.apiKeys.value as string[]) {
    expect(key).toMatch(/^[A-Za-z0-9]{40}$/);
    expect(exported).not.toContain(key);
  }
  expect(out.apiKeys.value[0]).not.toBe(out.apiKeys.value[1]);
  for (let i = 0; i < 2; i++) {
    expect(await models(out.endpoints.value[i], out.apiKeys.value[i])).toBe(200);
    expect(out.ready.value[i]).toMatch(/^ready: /);
  }
  const again = await stack.up();
  expect(Object.keys(again.summary.resourceChanges ?? {}).filter((k) => k !== "same")).toEqual([]);
  await stack.destroy();
  for (const { sb } of boxes) expect((await sshRun(sb, "systemctl cat vllm.service")).code).not.toBe(0);
});

test("host-from-stack: the infra stack exports a host, the app stack serves on it through a StackReference", async () => {
  const infraDir = installExample("host-from-stack/infra", undefined);
  const appDir = installExample("host-from-stack/app", tarball);
  dirs.push(infraDir, appDir);
  const { sb, port } = boxes[0];
  const s = settingsFor(sb, port);
  const infra = await openProjectStack(
    infraDir,
    "e2e",
    { host: s.connection.host, port: s.connection.port, user: "root", hostKey: sb.hostKey },
    { privateKey: fs.readFileSync(sb.privateKey, "utf8") },
  );
  stacks.push(infra);
  await infra.up();
  const app = await openProjectStack(appDir, "e2e", {
    infraStack: "organization/host-from-stack-infra/e2e",
    hardware: s.hardware,
    model: s.model,
    serving: s.serving,
    vllm: s.vllm,
    host: s.host,
  });
  stacks.push(app);
  await app.up();
  const out = await app.outputs();
  expect(out.endpoint.value).toBe(`http://127.0.0.1:${port}/v1`);
  expect(await models(out.endpoint.value, out.apiKey.value)).toBe(200);
  expect(out.tunnel.value).toBe(`ssh -N -L ${port}:127.0.0.1:${port} -p ${sb.port} root@127.0.0.1`);
  expect((await sshOk(sb, "systemctl is-active vllm.service")).trim()).toBe("active");
  await app.destroy();
  await infra.destroy();
  expect((await sshRun(sb, "systemctl cat vllm.service")).code).not.toBe(0);
});
