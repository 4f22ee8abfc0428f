// The SSH connection of every host step, from a server's args. The private
// key is a Pulumi secret (an input, or a local file read at run time); the
// host key is pinned unless the args explicitly opt out.
import { hostKeyProblem } from "./host-key";
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import type { types } from "@pulumi/command";
import type { StackConfig } from "../config/schema";
import { resolveLocalPath } from "../config/load";
import type { SshConnection } from "../api/args";

function readLocal(p: string, projectDir: string, what: string): string {
  const file = resolveLocalPath(p, projectDir);
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new pulumi.RunError(`${what}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}) -> fix the path in the stack config`);
  }
}

export function hostKeyOf(c: StackConfig["connection"], projectDir: string): string | undefined {
  if (c.hostKey) return c.hostKey;
  if (c.hostKeyPath) {
    // A known_hosts-style line ("host ssh-ed25519 AAAA") or a .pub file: keep "type base64".
    const text = readLocal(c.hostKeyPath, projectDir, "connection.hostKeyPath").trim();
    const m = /(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) ([A-Za-z0-9+/]+=*)/.exec(text);
    if (!m) throw new pulumi.RunError(`connection.hostKeyPath: no public key line in ${c.hostKeyPath} -> point it at the host's ssh_host_ed25519_key.pub`);
    const problem = hostKeyProblem(`${m[1]} ${m[2]}`);
    if (problem) throw new pulumi.RunError(`connection.hostKeyPath: the key in ${c.hostKeyPath} ${problem}`);
    return `${m[1]} ${m[2]}`;
  }
  return undefined;
}

/**
 * The remote.Command connection of a server's args: Input fields pass through
 * (a VM's address may be unknown until it exists), the keys become secrets on
 * entry, local key files are read now (a missing file fails preview).
 */
export function connectionArgs(c: SshConnection, projectDir: string): types.input.remote.ConnectionArgs {
  const privateKey: pulumi.Input<string> = c.privateKeyPath
    ? pulumi.secret(readLocal(c.privateKeyPath, projectDir, "connection.privateKeyPath"))
    : pulumi.secret(c.privateKey!);
  const hostKey = c.hostKey ?? (c.hostKeyPath ? hostKeyOf({ hostKeyPath: c.hostKeyPath } as StackConfig["connection"], projectDir) : undefined);
  const jump = c.jump;
  return {
    host: c.host,
    port: c.port ?? 22,
    user: c.user ?? "root",
    privateKey,
    hostKey,
    perDialTimeout: c.dialTimeoutSeconds ?? 15,
    dialErrorLimit: c.dialErrorLimit ?? 10,
    ...(jump
      ? {
          proxy: {
            host: jump.host,
            port: jump.port ?? 22,
            user: jump.user ?? "root",
            privateKey: jump.privateKeyPath
              ? pulumi.secret(readLocal(jump.privateKeyPath, projectDir, "connection.jump.privateKeyPath"))
              : jump.privateKey !== undefined
                ? pulumi.secret(jump.privateKey)
                : privateKey,
            hostKey: jump.hostKey,
          },
        }
      : {}),
  };
}

/** Steps run through `sudo -n` unless told otherwise or the user is root (the user may be an Output). */
export function sudoFor(c: Pick<SshConnection, "sudo" | "user">): pulumi.Output<boolean> {
  if (c.sudo !== undefined) return pulumi.output(c.sudo);
  return pulumi.output(c.user ?? "root").apply((u) => u !== "root");
}
