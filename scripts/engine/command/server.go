// The ResourceProvider gRPC service of pulumi-vllm's own
// pulumi-resource-command (see main.go for why it exists).
package main

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil/rpcerror"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/emptypb"
)

//go:embed schema.json
var schemaTemplate string

type server struct {
	pulumirpc.UnimplementedResourceProviderServer
	logs engineLog

	// Cancel ends every running command: the context of each operation is
	// derived from this one.
	mu     sync.Mutex
	base   context.Context
	cancel context.CancelFunc
}

func newServer(logs engineLog) *server {
	ctx, cancel := context.WithCancel(context.Background())
	return &server{logs: logs, base: ctx, cancel: cancel}
}

// opContext is the context of one operation: it ends with the request, with
// Cancel, or after the operation's custom timeout (seconds, 0 = none).
func (s *server) opContext(req context.Context, timeout float64) (context.Context, context.CancelFunc) {
	s.mu.Lock()
	base := s.base
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(req)
	stop := context.AfterFunc(base, cancel)
	if timeout > 0 {
		tctx, tcancel := context.WithTimeout(ctx, time.Duration(timeout*float64(time.Second)))
		return tctx, func() { tcancel(); stop(); cancel() }
	}
	return ctx, func() { stop(); cancel() }
}

var unmarshalOpts = plugin.MarshalOptions{
	KeepUnknowns: true, KeepSecrets: true, KeepResources: true, SkipNulls: true,
}

var marshalOpts = plugin.MarshalOptions{
	KeepUnknowns: true, KeepSecrets: true, KeepResources: true,
}

func checkType(urn string) error {
	if t := string(resource.URN(urn).Type()); t != remoteCommandType {
		return rpcerror.Newf(codes.InvalidArgument,
			"resource type %s is not implemented by pulumi-vllm's pulumi-resource-command "+
				"(it implements %s only; use the upstream command provider for the others)", t, remoteCommandType)
	}
	return nil
}

// ---- plugin metadata and provider configuration ---------------------------

func (s *server) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: Version}, nil
}

func (s *server) GetSchema(_ context.Context, req *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	if req.GetSubpackageName() != "" {
		return nil, rpcerror.Newf(codes.InvalidArgument, "no subpackage %q", req.GetSubpackageName())
	}
	return &pulumirpc.GetSchemaResponse{Schema: strings.Replace(schemaTemplate, "@VERSION@", Version, 1)}, nil
}

func (s *server) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (s *server) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (s *server) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, AcceptResources: true, SupportsPreview: true}, nil
}

func (s *server) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	s.mu.Lock()
	s.cancel()
	// Later operations (e.g. the deletes of a destroy after an interrupted up)
	// start from a fresh context.
	s.base, s.cancel = context.WithCancel(context.Background())
	s.mu.Unlock()
	return &emptypb.Empty{}, nil
}

func (s *server) GetMapping(context.Context, *pulumirpc.GetMappingRequest) (*pulumirpc.GetMappingResponse, error) {
	return &pulumirpc.GetMappingResponse{}, nil
}

func (s *server) GetMappings(context.Context, *pulumirpc.GetMappingsRequest) (*pulumirpc.GetMappingsResponse, error) {
	return &pulumirpc.GetMappingsResponse{}, nil
}

// ---- remote:Command lifecycle ---------------------------------------------

func (s *server) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), withLabel(unmarshalOpts, "Check.news"))
	if err != nil {
		return nil, err
	}
	inputs, failures := checkInputs(news)
	out, err := plugin.MarshalProperties(inputs, withLabel(marshalOpts, "Check.inputs"))
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.CheckResponse{Inputs: out}
	for _, f := range failures {
		resp.Failures = append(resp.Failures, &pulumirpc.CheckFailure{Property: f.property, Reason: f.reason})
	}
	return resp, nil
}

func (s *server) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	olds, err := plugin.UnmarshalProperties(req.GetOlds(), withLabel(unmarshalOpts, "Diff.olds"))
	if err != nil {
		return nil, err
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), withLabel(unmarshalOpts, "Diff.news"))
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.DiffResponse{
		Changes:         pulumirpc.DiffResponse_DIFF_NONE,
		DetailedDiff:    map[string]*pulumirpc.PropertyDiff{},
		HasDetailedDiff: true,
	}
	for _, d := range diffInputs(olds, news) {
		kind := map[string]pulumirpc.PropertyDiff_Kind{
			"add": pulumirpc.PropertyDiff_ADD, "delete": pulumirpc.PropertyDiff_DELETE, "update": pulumirpc.PropertyDiff_UPDATE,
		}[d.kind]
		if d.replace {
			kind = map[string]pulumirpc.PropertyDiff_Kind{
				"add": pulumirpc.PropertyDiff_ADD_REPLACE, "delete": pulumirpc.PropertyDiff_DELETE_REPLACE,
				"update": pulumirpc.PropertyDiff_UPDATE_REPLACE,
			}[d.kind]
			resp.Replaces = append(resp.Replaces, string(d.key))
		}
		resp.Changes = pulumirpc.DiffResponse_DIFF_SOME
		resp.Diffs = append(resp.Diffs, string(d.key))
		resp.DetailedDiff[string(d.key)] = &pulumirpc.PropertyDiff{Kind: kind, InputDiff: true}
	}
	return resp, nil
}

func (s *server) Create(ctx context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	inputs, err := plugin.UnmarshalProperties(req.GetProperties(), withLabel(unmarshalOpts, "Create.properties"))
	if err != nil {
		return nil, err
	}
	name := req.GetName()
	if name == "" {
		name = resource.URN(req.GetUrn()).Name()
	}
	id, err := resource.NewUniqueHex(name, 8, 0)
	if err != nil {
		return nil, err
	}
	if req.GetPreview() {
		computed := resource.MakeComputed(resource.NewStringProperty(""))
		return createResponse(id, outputsFrom(inputs, computed, computed))
	}
	empty := resource.NewStringProperty("")
	if !present(inputs, "create") {
		return createResponse(id, outputsFrom(inputs, empty, empty))
	}
	props, err := readCommandProps(inputs)
	if err != nil {
		return nil, rpcerror.New(codes.InvalidArgument, err.Error())
	}
	// A new resource has no previous output.
	props.stdout, props.stderr = "", ""
	opCtx, cancel := s.opContext(ctx, req.GetTimeout())
	defer cancel()
	stdout, stderr, runErr := runCommand(opCtx, s.logs, resource.URN(req.GetUrn()), props, *props.create)
	if runErr != nil {
		// The resource is recorded with an initialization error, so the
		// next update runs its command again.
		return nil, initFailed(id, outputsFrom(inputs, empty, empty), runErr)
	}
	return createResponse(id, outputsFrom(inputs, resource.NewStringProperty(stdout), resource.NewStringProperty(stderr)))
}

func (s *server) Update(ctx context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	olds, err := plugin.UnmarshalProperties(req.GetOlds(), withLabel(unmarshalOpts, "Update.olds"))
	if err != nil {
		return nil, err
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), withLabel(unmarshalOpts, "Update.news"))
	if err != nil {
		return nil, err
	}
	prevOut, prevErr := resource.NewStringProperty(""), resource.NewStringProperty("")
	if present(olds, "stdout") {
		prevOut = olds["stdout"]
	}
	if present(olds, "stderr") {
		prevErr = olds["stderr"]
	}
	// Until the command runs, the outputs stay those of the last run.
	if req.GetPreview() || (!present(news, "update") && !present(news, "create")) {
		return updateResponse(outputsFrom(news, prevOut, prevErr))
	}
	props, err := readCommandProps(news)
	if err != nil {
		return nil, rpcerror.New(codes.InvalidArgument, err.Error())
	}
	if old, err := readCommandProps(olds); err == nil {
		props.stdout, props.stderr = old.stdout, old.stderr
	}
	cmd := props.create
	if props.update != nil {
		cmd = props.update
	}
	opCtx, cancel := s.opContext(ctx, req.GetTimeout())
	defer cancel()
	stdout, stderr, runErr := runCommand(opCtx, s.logs, resource.URN(req.GetUrn()), props, *cmd)
	if runErr != nil {
		// Keep the old state: the engine keeps the old inputs and these
		// outputs, and the next update runs the command again.
		return nil, initFailed(req.GetId(), olds, runErr)
	}
	return updateResponse(outputsFrom(news, resource.NewStringProperty(stdout), resource.NewStringProperty(stderr)))
}

func (s *server) Delete(ctx context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	state, err := plugin.UnmarshalProperties(req.GetProperties(), withLabel(unmarshalOpts, "Delete.properties"))
	if err != nil {
		return nil, err
	}
	if !present(state, "delete") {
		return &emptypb.Empty{}, nil
	}
	props, err := readCommandProps(state)
	if err != nil {
		return nil, rpcerror.New(codes.InvalidArgument, err.Error())
	}
	opCtx, cancel := s.opContext(ctx, req.GetTimeout())
	defer cancel()
	if _, _, err := runCommand(opCtx, s.logs, resource.URN(req.GetUrn()), props, *props.delete); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// Read returns the state as it is: a command has nothing to read back.
func (s *server) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	if err := checkType(req.GetUrn()); err != nil {
		return nil, err
	}
	inputs := req.GetInputs()
	if inputs == nil && req.GetProperties() != nil {
		state, err := plugin.UnmarshalProperties(req.GetProperties(), withLabel(unmarshalOpts, "Read.properties"))
		if err != nil {
			return nil, err
		}
		in := resource.PropertyMap{}
		for _, k := range inputKeys {
			if present(state, k) {
				in[k] = state[k]
			}
		}
		if inputs, err = plugin.MarshalProperties(in, withLabel(marshalOpts, "Read.inputs")); err != nil {
			return nil, err
		}
	}
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: inputs}, nil
}

// ---- helpers ----------------------------------------------------------------

func withLabel(o plugin.MarshalOptions, label string) plugin.MarshalOptions {
	o.Label = label
	return o
}

func createResponse(id string, outputs resource.PropertyMap) (*pulumirpc.CreateResponse, error) {
	st, err := plugin.MarshalProperties(outputs, withLabel(marshalOpts, "Create.outputs"))
	if err != nil {
		return nil, err
	}
	return &pulumirpc.CreateResponse{Id: id, Properties: st}, nil
}

func updateResponse(outputs resource.PropertyMap) (*pulumirpc.UpdateResponse, error) {
	st, err := plugin.MarshalProperties(outputs, withLabel(marshalOpts, "Update.outputs"))
	if err != nil {
		return nil, err
	}
	return &pulumirpc.UpdateResponse{Properties: st}, nil
}

// initFailed is the error of a create or update whose command failed: the
// resource exists (id) with the given state, and failed to initialize.
func initFailed(id string, state resource.PropertyMap, cause error) error {
	st, err := plugin.MarshalProperties(state, withLabel(marshalOpts, "initFailed.state"))
	if err != nil {
		return fmt.Errorf("%w (and the state could not be encoded: %v)", cause, err)
	}
	return rpcerror.WithDetails(rpcerror.New(codes.Unknown, cause.Error()),
		&pulumirpc.ErrorResourceInitFailed{Id: id, Properties: st, Reasons: []string{cause.Error()}})
}
