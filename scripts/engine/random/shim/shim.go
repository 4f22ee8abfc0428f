// Package shim exposes terraform-provider-random's plugin-framework provider,
// which lives in an internal package upstream. Go allows the import because
// this package's path sits under github.com/terraform-providers/terraform-provider-random;
// ensure-pulumi.sh gives it a go.mod of that name and wires it with a replace.
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"
	random "github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// NewProvider returns the upstream Terraform random provider.
func NewProvider() provider.Provider {
	return random.New()
}
