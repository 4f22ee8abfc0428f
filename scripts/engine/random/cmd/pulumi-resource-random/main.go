// pulumi-resource-random serves the random provider to the Pulumi engine.
package main

import (
	"context"

	pftfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"

	"pulumi-vllm.local/engine/random/info"
)

func main() {
	pftfbridge.Main(context.Background(), "random", info.Provider(),
		pftfbridge.ProviderMetadata{PackageSchema: info.Schema})
}
