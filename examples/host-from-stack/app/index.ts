// The app stack: serves a model on the host another stack exports, through a
// StackReference (the everyday Pulumi pattern for "a VM made elsewhere").
// The connection fields are that stack's outputs: the server waits for them,
// and `pulumi preview` still checks the plan (model, memory, flags) up front.
import * as pulumi from "@pulumi/pulumi";
import { VllmServer, VllmServerArgs } from "pulumi-vllm";

const cfg = new pulumi.Config();
const infra = new pulumi.StackReference(cfg.require("infraStack"));

const server = new VllmServer("app", {
  connection: {
    host: infra.requireOutput("host") as pulumi.Output<string>,
    port: infra.requireOutput("port") as pulumi.Output<number>,
    user: infra.requireOutput("user") as pulumi.Output<string>,
    hostKey: infra.requireOutput("hostKey") as pulumi.Output<string>,
    privateKey: infra.requireOutput("privateKey") as pulumi.Output<string>,
  },
  hardware: cfg.requireObject<VllmServerArgs["hardware"]>("hardware"),
  model: cfg.requireObject<VllmServerArgs["model"]>("model"),
  serving: cfg.getObject<VllmServerArgs["serving"]>("serving"),
  vllm: cfg.requireObject<VllmServerArgs["vllm"]>("vllm"),
  host: cfg.getObject<VllmServerArgs["host"]>("host"),
});

export const endpoint = server.endpoint;
export const apiKey = server.apiKey;
export const tunnel = server.tunnel;
export const ready = server.ready;
