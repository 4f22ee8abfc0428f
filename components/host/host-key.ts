// Which pinned SSH host keys the upstream Command provider can verify.
// pulumi-command v1.2.1 offers the server exactly one host-key algorithm, the
// pinned key's own type (connection.go: HostKeyAlgorithms = [key.Type()]).
// For an RSA key that is `ssh-rsa`, the SHA-1 signature that OpenSSH 8.8 and
// later refuse: every step would fail to connect at `pulumi up`. Refused at
// preview instead, with the fix.
const USABLE = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"];

/**
 * What is wrong with a pinned host key line ("type base64 [comment]"), as
 * "what -> fix" (the caller names the key), or undefined when it is usable.
 */
export function hostKeyProblem(key: string, host = "HOST"): string | undefined {
  const type = key.trim().split(/\s+/)[0] ?? "";
  if (USABLE.includes(type)) return undefined;
  const scan = `ssh-keyscan -t ed25519 ${host}`;
  if (type === "ssh-rsa") {
    return `is an ssh-rsa key, which the Command provider cannot verify (it offers only SHA-1 signatures, which OpenSSH 8.8+ refuses) -> pin the host's ed25519 or ecdsa key instead (\`${scan}\` prints it)`;
  }
  return `is not a host key type the Command provider can verify -> pin the host's ed25519 or ecdsa key (\`${scan}\` prints it)`;
}
