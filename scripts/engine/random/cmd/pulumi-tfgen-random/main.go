// pulumi-tfgen-random writes schema.json and bridge-metadata.json
// (run as: pulumi-tfgen-random schema --out <dir of package info>).
package main

import (
	pftfgen "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"

	"pulumi-vllm.local/engine/random/info"
)

func main() {
	pftfgen.Main("random", info.Provider())
}
