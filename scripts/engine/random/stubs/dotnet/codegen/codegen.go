// Package codegen stands in for github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3/codegen
// in the pulumi-vllm build of pulumi-resource-random (see ensure-pulumi.sh).
// pulumi-terraform-bridge imports that package to convert examples to C# and
// to fill the C# section of the schema; the versions it needs are not served
// by the Go module proxy here, and the served ones do not compile against the
// bridge's pulumi. Only these declarations are used: the types carry the C#
// schema metadata, and program generation is not available.
package codegen

import (
	"errors"

	"github.com/hashicorp/hcl/v2"
	"github.com/pulumi/pulumi/pkg/v3/codegen/pcl"
)

// CSharpPackageInfo is the C# section of a package schema.
type CSharpPackageInfo struct {
	PackageReferences            map[string]string `json:"packageReferences,omitempty"`
	Namespaces                   map[string]string `json:"namespaces,omitempty"`
	Compatibility                string            `json:"compatibility,omitempty"`
	DictionaryConstructors       bool              `json:"dictionaryConstructors,omitempty"`
	ProjectReferences            []string          `json:"projectReferences,omitempty"`
	RootNamespace                string            `json:"rootNamespace,omitempty"`
	LiftSingleValueMethodReturns bool              `json:"liftSingleValueMethodReturns,omitempty"`
	RespectSchemaVersion         bool              `json:"respectSchemaVersion,omitempty"`
}

// CSharpPropertyInfo is the C# section of a property schema.
type CSharpPropertyInfo struct {
	Name string `json:"name,omitempty"`
}

// CSharpResourceInfo is the C# section of a resource schema.
type CSharpResourceInfo struct {
	Name string `json:"name,omitempty"`
}

// GenerateProgram is not available in this build.
func GenerateProgram(program *pcl.Program) (map[string][]byte, hcl.Diagnostics, error) {
	return nil, nil, errors.New("C# program generation is not part of the pulumi-vllm build")
}
