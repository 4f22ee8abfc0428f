// Package codegen stands in for github.com/pulumi/pulumi-yaml/pkg/pulumiyaml/codegen
// in the pulumi-vllm build of pulumi-resource-random (see ensure-pulumi.sh).
// pulumi-terraform-bridge imports it only to convert examples to YAML, which
// this build skips; the versions it needs are not served by the Go module
// proxy here, and the served ones do not compile against the bridge's pulumi.
package codegen

import (
	"errors"

	"github.com/hashicorp/hcl/v2"
	"github.com/pulumi/pulumi/pkg/v3/codegen/pcl"
)

// GenerateProgram is not available in this build.
func GenerateProgram(program *pcl.Program) (map[string][]byte, hcl.Diagnostics, error) {
	return nil, nil, errors.New("YAML program generation is not part of the pulumi-vllm build")
}
