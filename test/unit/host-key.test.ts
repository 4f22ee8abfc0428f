import { hostKeyProblem } from "../../components/host/host-key";

describe("hostKeyProblem", () => {
  it("accepts ed25519 and ecdsa keys", () => {
    expect(hostKeyProblem("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMq", "gpu-box")).toBeUndefined();
    expect(hostKeyProblem("ecdsa-sha2-nistp256 AAAAE2VjZHNh host", "gpu-box")).toBeUndefined();
  });
  it("refuses ssh-rsa with the fix (upstream offers only SHA-1 for it)", () => {
    expect(hostKeyProblem("ssh-rsa AAAAB3NzaC1yc2E", "gpu-box")).toBe(
      "is an ssh-rsa key, which the Command provider cannot verify (it offers only SHA-1 signatures, which OpenSSH 8.8+ refuses) -> pin the host's ed25519 or ecdsa key instead (`ssh-keyscan -t ed25519 gpu-box` prints it)",
    );
  });
  it("refuses other types", () => {
    expect(hostKeyProblem("ssh-dss AAAA")).toMatch(/^is not a host key type .* -> pin/);
  });
  it("the stack config refuses a pinned ssh-rsa key at preview, for the target and the jump host", () => {
    const { parseStackConfig } = require("../../components/config/load");
    const base = {
      topology: "single",
      connection: { host: "gpu-box", hostKey: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB" },
      hardware: { gpuCount: 1, gpuMemoryGiB: 24 },
      model: { id: "Qwen/Qwen2.5-7B-Instruct" },
      vllm: { version: "0.11.0" },
    };
    expect(() => parseStackConfig(base, "test")).toThrow(/connection\.hostKey.*ssh-rsa key.* -> pin the host's ed25519 or ecdsa key/);
    const jump = { ...base, connection: { host: "gpu-box", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", jump: { host: "bastion", hostKey: "ssh-rsa AAAAB3NzaC1yc2E" } } };
    expect(() => parseStackConfig(jump, "test")).toThrow(/connection\.jump\.hostKey.*ssh-rsa key/);
  });
});
