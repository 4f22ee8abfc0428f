// topology: single — one box (a rig, a workstation) brought from bare
// Debian/Ubuntu to a serving vLLM by the host steps, in order. The steps are
// children of the server component that calls this (VllmServer), each named
// after it: two servers in one program never collide.
import * as pulumi from "@pulumi/pulumi";
import type { types } from "@pulumi/command";
import type { SingleStackConfig } from "../config/schema";
import { Plan, TOOLCHAIN_PACKAGES } from "../plan/plan";
import { toMiB } from "../plan/host-memory";
import { EarlyOom, LaunchUnit, Swapfile, Toolchain, UvVenv, versionedVenv, VllmInstall, Weights, weightsOfPlan } from "../host/steps";
import { downloadsWeights } from "../plan/times";

export interface SingleHostSteps {
  config: SingleStackConfig;
  plan: Plan;
  connection: types.input.remote.ConnectionArgs;
  sudo: pulumi.Input<boolean>;
  /** VLLM_API_KEY (when the policy is not none) and HF_TOKEN (when set), as secrets. */
  secrets: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** The login to vllm.indexUrl (secret indexCredentials), for the uv and vLLM install steps only. */
  indexCredentials?: pulumi.Input<string>;
  /** The per-stack key of the secrets' digest in triggers (secret). */
  triggerKey: pulumi.Input<string>;
  /** What the first step waits for (the server's own dependsOn: children do not inherit it). */
  dependsOn?: pulumi.Input<pulumi.Input<pulumi.Resource>[]> | pulumi.Input<pulumi.Resource>;
}

export interface SingleHost {
  launch: LaunchUnit;
  /** The weights step, when it downloads (a Hub id with model.download on). */
  weights?: Weights;
}

/** The steps of one host, as children of `parent`; returns the launch unit (whose gate says the server is ready). */
export function singleHostSteps(parent: pulumi.Resource, name: string, a: SingleHostSteps): SingleHost {
  const c = a.config;
  const common = { connection: a.connection, sudo: a.sudo };
  const child = (dependsOn: pulumi.Resource[]) => ({ parent, dependsOn });

  const toolchain = new Toolchain(
    `${name}-toolchain`,
    { ...common, packages: [...TOOLCHAIN_PACKAGES, ...c.host.extraPackages], aptLockTimeoutSeconds: c.host.aptLockTimeoutSeconds },
    { parent, dependsOn: a.dependsOn },
  );
  const swap = new Swapfile(
    `${name}-swapfile`,
    { ...common, path: c.host.swap.mode === "off" ? "/swapfile" : c.host.swap.path, sizeMiB: toMiB(a.plan.host.swapGiB), adopt: c.host.adopt.includes("swap") },
    child([toolchain]),
  );
  const guards: pulumi.Resource[] = [swap];
  if (c.host.earlyoom.enabled) {
    const e = c.host.earlyoom;
    guards.push(
      new EarlyOom(
        `${name}-earlyoom`,
        { ...common, memPercent: e.memPercent, swapPercent: e.swapPercent, avoid: e.avoid, prefer: e.prefer, aptLockTimeoutSeconds: c.host.aptLockTimeoutSeconds },
        child([swap]),
      ),
    );
  }
  // Each release in a venv of its own, installed while the server runs from the previous one; the launch step
  // points host.venvPath (the unit's <venvPath>/bin/vllm) at it, and points it back if the new server fails.
  const venv = new UvVenv(`${name}-uv-venv`, { ...common, uvVersion: c.vllm.uvVersion, indexUrl: c.vllm.indexUrl, indexCredentials: a.indexCredentials, uvOnly: true }, child([toolchain]));
  const target = versionedVenv(c.host.venvsDir, c.vllm);
  const install = new VllmInstall(
    `${name}-vllm-install`,
    { ...common, venvPath: target, uvBin: venv.uvBin, vllm: c.vllm, indexCredentials: a.indexCredentials, versioned: { dir: c.host.venvsDir, keep: c.vllm.keepVenvs, activeLink: c.host.venvPath } },
    child([venv]),
  );
  const weights = downloadsWeights(c)
    ? new Weights(
        `${name}-weights`,
        {
          ...common,
          ...weightsOfPlan(c, a.plan),
          // the hf CLI of the release being installed: the link (host.venvPath) moves only in the launch step
          venvPath: target,
          // The cache stays root's here: the service user is made by the launch step, after this one, which
          // then hands it what root owns in the cache (launch-unit.sh, service_user_create).
          cacheOwner: undefined,
          secrets: a.secrets,
        },
        child([install]),
      )
    : undefined;
  const launch = new LaunchUnit(
    `${name}-launch`,
    {
      ...common,
      adopt: c.host.adopt.includes("unit"),
      unitName: c.host.unitName,
      serviceUser: c.host.serviceUser,
      adoptUser: c.host.adopt.includes("user"),
      cacheDir: c.host.cacheDir,
      triggerKey: a.triggerKey,
      // The version is in the unit so that a vLLM upgrade restarts the server.
      description: `vLLM ${c.vllm.version} serving ${a.plan.launch.servedModelName} (pulumi-vllm)`,
      argv: a.plan.launch.argv,
      env: a.plan.launch.env,
      secrets: a.secrets,
      requiredSecrets: a.plan.launch.secretEnv.filter((n) => n === "VLLM_API_KEY"),
      bindHost: c.serving.bindHost,
      port: c.serving.port,
      readinessTimeoutSeconds: Math.round(c.host.readinessTimeoutMinutes * 60),
      servedModelName: a.plan.launch.servedModelName,
      venv: { link: c.host.venvPath, target },
    },
    child([install, ...(weights ? [weights] : []), ...guards]),
  );
  return { launch, weights };
}
