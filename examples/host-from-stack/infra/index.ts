// The infrastructure stack: it owns the machine and exports how to reach it.
// Here the machine exists already and its address comes from config; in your
// infrastructure this is where the VM is made (an aws.ec2.Instance, a
// Proxmox VM, a bare-metal reservation...) and the exports are its outputs.
import * as pulumi from "@pulumi/pulumi";

const cfg = new pulumi.Config();
export const host = cfg.require("host");
export const port = cfg.getNumber("port") ?? 22;
export const user = cfg.get("user") ?? "root";
/** The machine's SSH host key line, for pinning. */
export const hostKey = cfg.require("hostKey");
/** The key the app stack logs in with: a secret in both stacks' state. */
export const privateKey = cfg.requireSecret("privateKey");
