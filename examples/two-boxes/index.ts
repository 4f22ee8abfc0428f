// Two GPU boxes, one vLLM server each, in one program. Each box is an entry of
// the `boxes` config (its SSH connection plus what differs from the shared
// settings); everything else is shared. Names derive from each box's name, so
// the two servers never collide.
import * as pulumi from "@pulumi/pulumi";
import { VllmServer, VllmServerArgs } from "pulumi-vllm";

interface Box {
  name: string;
  connection: VllmServerArgs["connection"];
  serving?: VllmServerArgs["serving"];
  host?: VllmServerArgs["host"];
}

const cfg = new pulumi.Config();
const boxes = cfg.requireObject<Box[]>("boxes");
const shared = {
  hardware: cfg.requireObject<VllmServerArgs["hardware"]>("hardware"),
  model: cfg.requireObject<VllmServerArgs["model"]>("model"),
  serving: cfg.getObject<VllmServerArgs["serving"]>("serving") ?? {},
  vllm: cfg.requireObject<VllmServerArgs["vllm"]>("vllm"),
  host: cfg.getObject<VllmServerArgs["host"]>("host") ?? {},
};

const servers = boxes.map(
  (box) =>
    new VllmServer(box.name, {
      ...shared,
      connection: box.connection,
      serving: { ...shared.serving, ...box.serving },
      host: { ...shared.host, ...box.host },
    }),
);

export const endpoints = servers.map((s) => s.endpoint);
export const apiKeys = servers.map((s) => s.apiKey);
export const ready = servers.map((s) => s.ready);
