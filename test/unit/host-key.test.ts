import { hostKeyProblem } from "../../components/host/host-key";

describe("hostKeyProblem", () => {
  it("accepts ed25519 and ecdsa keys", () => {
    expect(hostKeyProblem("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMq", "connection.hostKey", "gpu-box")).toBeUndefined();
    expect(hostKeyProblem("ecdsa-sha2-nistp256 AAAAE2VjZHNh host", "connection.hostKey", "gpu-box")).toBeUndefined();
  });
  it("refuses ssh-rsa with the fix (upstream offers only SHA-1 for it)", () => {
    expect(hostKeyProblem("ssh-rsa AAAAB3NzaC1yc2E", "connection.hostKey", "gpu-box")).toBe(
      "connection.hostKey: an ssh-rsa host key cannot be verified by the Command provider (it offers only SHA-1 signatures, which OpenSSH 8.8+ refuses) -> pin the host's ed25519 or ecdsa key instead (`ssh-keyscan -t ed25519 gpu-box`)",
    );
  });
  it("refuses other types", () => {
    expect(hostKeyProblem("ssh-dss AAAA", "connection.jump.hostKey", "bastion")).toMatch(/^connection\.jump\.hostKey: 'ssh-dss' is not a host key type .* -> pin/);
  });
});
