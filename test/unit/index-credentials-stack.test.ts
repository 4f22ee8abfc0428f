// The stack program's reading of the secret indexCredentials (the engine hands
// the program its secrets decrypted): a value without the form user:password,
// or a login for PyPI itself, fails before any resource exists, never quoting
// the value; a good one becomes the servers' indexCredentials arg, secret.
import * as pulumi from "@pulumi/pulumi";
import { stackServerArgs } from "../../components/api/stack-config";

pulumi.runtime.setMocks({ newResource: (a) => ({ id: `${a.name}-id`, state: a.inputs }), call: (a) => a.inputs }, "pulumi-vllm", "idxstack", false);

function setConfig(indexCredentials: string, vllm: Record<string, unknown>) {
  pulumi.runtime.setAllConfig(
    {
      "pulumi-vllm:topology": "single",
      "pulumi-vllm:connection": JSON.stringify({ host: "10.1.2.3", privateKeyPath: "/tmp/none", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG1vY2s" }),
      "pulumi-vllm:hardware": JSON.stringify({ gpuCount: 1, gpuMemoryGiB: 24, hostRamGiB: 64, freeDiskGiB: 500 }),
      "pulumi-vllm:model": JSON.stringify({ id: "Qwen/Qwen2.5-7B-Instruct" }),
      "pulumi-vllm:vllm": JSON.stringify({ version: "0.11.0", ...vllm }),
      "pulumi-vllm:indexCredentials": indexCredentials,
    },
    ["pulumi-vllm:indexCredentials"],
  );
}
const errorOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error("no error");
};
const MIRROR = { indexUrl: "https://pypi.internal.example.org/simple" };

test("a value that is not user:password: a RunError with the fix, without the value", () => {
  setConfig("JustTheTokenXYZ", MIRROR);
  const e = errorOf(() => stackServerArgs());
  expect(pulumi.RunError.isInstance(e)).toBe(true);
  expect(e.message).toMatch(/indexCredentials: is not user:password -> .*pulumi config set --secret indexCredentials '<user>:<password>'/);
  expect(e.message).not.toContain("JustTheTokenXYZ");
});

test("a login for the default index (PyPI): refused, the value not shown", () => {
  setConfig("ci-bot:TokenForPyPI123", {});
  const e = errorOf(() => stackServerArgs());
  expect(e.message).toMatch(/indexCredentials: set, but vllm.indexUrl is https:\/\/pypi.org\/simple/);
  expect(e.message).not.toContain("TokenForPyPI123");
});

test("a good login becomes the server's indexCredentials, a secret", async () => {
  setConfig("ci-bot:GoodToken456", MIRROR);
  const { args } = stackServerArgs();
  const out = pulumi.output(args.indexCredentials!);
  expect(await (out as any).isSecret).toBe(true);
  expect(await new Promise((r) => out.apply(r))).toBe("ci-bot:GoodToken456");
});
