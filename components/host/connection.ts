// The SSH connection of every host step, from the stack config. The private
// key is a Pulumi secret (from secret config or a local file read at run
// time); the host key is pinned unless the stack explicitly opts out.
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import type { types } from "@pulumi/command";
import type { StackConfig } from "../config/schema";
import { resolveLocalPath } from "../config/load";

export interface ConnectionSources {
  projectDir: string;
  /** secret config `sshPrivateKey`, when the stack sets it */
  secretKey?: pulumi.Output<string>;
}

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
    return `${m[1]} ${m[2]}`;
  }
  return undefined;
}

export function sshConnection(c: StackConfig["connection"], src: ConnectionSources): types.input.remote.ConnectionArgs {
  const privateKey: pulumi.Input<string> = c.privateKeyPath
    ? pulumi.secret(readLocal(c.privateKeyPath, src.projectDir, "connection.privateKeyPath"))
    : src.secretKey!;
  const jump = c.jump;
  return {
    host: c.host,
    port: c.port,
    user: c.user,
    privateKey,
    hostKey: hostKeyOf(c, src.projectDir),
    perDialTimeout: c.dialTimeoutSeconds,
    dialErrorLimit: c.dialErrorLimit,
    ...(jump
      ? {
          proxy: {
            host: jump.host,
            port: jump.port,
            user: jump.user,
            privateKey: jump.privateKeyPath ? pulumi.secret(readLocal(jump.privateKeyPath, src.projectDir, "connection.jump.privateKeyPath")) : privateKey,
            hostKey: jump.hostKey,
          },
        }
      : {}),
  };
}

export function useSudo(c: StackConfig["connection"]): boolean {
  return c.sudo ?? c.user !== "root";
}
