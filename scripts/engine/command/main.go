// pulumi-resource-command (pulumi-vllm build): pulumi-vllm's own
// implementation of the `command:remote:Command` resource of the Pulumi
// Command provider, as asked for by the npm SDK @pulumi/command 1.2.1
// (plugin "command", version 1.2.1).
//
// Why it exists: the upstream provider (module
// github.com/pulumi/pulumi-command/provider) cannot be fetched on the
// machines this project is built on: the Go module proxy answers 403 for it
// at every version and GitHub is not reachable. Where the upstream plugin can
// be downloaded (`pulumi plugin install resource command 1.2.1`, or a build
// of that module), the upstream plugin is the one to use; this one is a
// stand-in written from upstream's documented and observed behaviour, not a
// copy of its code.
//
// What it implements (README.md in this directory lists what differs from
// upstream):
//   - remote:Command: create/update/delete commands run over SSH
//     (golang.org/x/crypto/ssh), connection defaults, dial retries, host key
//     check, private key / password / agent auth, a proxy (jump) host,
//     stdin, environment, PULUMI_COMMAND_STDOUT/STDERR, logging, triggers
//     that force a replacement, and the error text of a failed command.
//   - GetSchema (the remote:Command part of the schema), GetPluginInfo,
//     CheckConfig/DiffConfig/Configure (accepting anything), Read (state
//     as is), Cancel (aborts running commands).
//
// Other resources of the upstream provider (local:Command, local:run,
// remote:CopyToRemote, remote:CopyFile) are not implemented: Check rejects
// them with an error that says so.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// Version is the provider version reported to the engine; the build sets it
// with -ldflags "-X main.Version=..." (it must match the SDK's plugin version).
var Version = "1.2.1"

const providerName = "command"

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "-version" || os.Args[1] == "--version") {
		fmt.Println(Version)
		return
	}
	err := provider.Main(providerName, func(host *provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		if host == nil {
			return newServer(discardLog{}), nil
		}
		return newServer(host), nil
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-resource-command: %v\n", err)
		os.Exit(1)
	}
}

// engineLog is what the provider needs of the engine host: messages tied to
// a resource URN, as diagnostics (Log) or as ephemeral status lines shown in
// the Info column of the progress display (LogStatus).
// *provider.HostClient implements it.
type engineLog interface {
	Log(ctx context.Context, sev diag.Severity, urn resource.URN, msg string) error
	LogStatus(ctx context.Context, sev diag.Severity, urn resource.URN, msg string) error
}

// discardLog is used when the plugin runs without an engine host (attach mode).
type discardLog struct{}

func (discardLog) Log(context.Context, diag.Severity, resource.URN, string) error       { return nil }
func (discardLog) LogStatus(context.Context, diag.Severity, resource.URN, string) error { return nil }
