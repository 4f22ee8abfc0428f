// Package info describes the Pulumi "random" package that pulumi-vllm builds
// from the Terraform random provider with pulumi-terraform-bridge. The tokens
// match the npm SDK @pulumi/random (random:index/<camelName>:<PascalName>).
// schema.json and bridge-metadata.json are generated next to this file by
// pulumi-tfgen-random during the build (ensure-pulumi.sh) and embedded.
package info

import (
	_ "embed"

	pftfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/terraform-providers/terraform-provider-random/shim"
)

//go:embed bridge-metadata.json
var metadata []byte

// Schema is the generated Pulumi package schema.
//
//go:embed schema.json
var Schema []byte

// Version is the version the provider reports; set with -ldflags -X.
var Version = "0.0.0-dev"

// Provider returns the bridge description of the random provider.
func Provider() tfbridge.ProviderInfo {
	res := func(tok string) *tfbridge.ResourceInfo {
		return &tfbridge.ResourceInfo{Tok: tfbridge.MakeResource("random", "index", tok)}
	}
	return tfbridge.ProviderInfo{
		P:            pftfbridge.ShimProvider(shim.NewProvider()),
		Name:         "random",
		Version:      Version,
		GitHubOrg:    "hashicorp",
		Publisher:    "Pulumi",
		Description:  "A Pulumi package to safely use randomness in Pulumi programs.",
		License:      "Apache-2.0",
		MetadataInfo: tfbridge.NewProviderMetadata(metadata),
		Resources: map[string]*tfbridge.ResourceInfo{
			"random_bytes":    res("RandomBytes"),
			"random_id":       res("RandomId"),
			"random_integer":  res("RandomInteger"),
			"random_password": res("RandomPassword"),
			"random_pet":      res("RandomPet"),
			"random_shuffle":  res("RandomShuffle"),
			"random_string":   res("RandomString"),
			"random_uuid":     res("RandomUuid"),
		},
	}
}
