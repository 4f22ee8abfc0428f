// Properties of command:remote:Command: defaults (Check), the diff, and
// reading them into Go values for a run. Part of pulumi-vllm's own
// pulumi-resource-command (see main.go for why it exists).
package main

import (
	"fmt"
	"sort"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

const remoteCommandType = "command:remote:Command"

// Input properties of remote:Command, in schema order.
var inputKeys = []resource.PropertyKey{
	"addPreviousOutputInEnv", "connection", "create", "delete", "environment",
	"logging", "stdin", "triggers", "update",
}

// Properties whose change replaces the resource instead of updating it.
var replaceKeys = map[resource.PropertyKey]bool{"triggers": true}

var loggingValues = map[string]bool{"stdout": true, "stderr": true, "stdoutAndStderr": true, "none": true}

// Schema defaults of the connection and proxy objects (the SDK applies them
// too; Check applies them for callers that did not).
var connectionDefaults = []struct {
	key resource.PropertyKey
	val resource.PropertyValue
}{
	{"dialErrorLimit", resource.NewNumberProperty(10)},
	{"perDialTimeout", resource.NewNumberProperty(15)},
	{"port", resource.NewNumberProperty(22)},
	{"user", resource.NewStringProperty("root")},
}

// plain returns v with every secret wrapper (and known output value) removed,
// at any depth.
func plain(v resource.PropertyValue) resource.PropertyValue {
	switch {
	case v.IsSecret():
		return plain(v.SecretValue().Element)
	case v.IsOutput():
		o := v.OutputValue()
		if !o.Known {
			return resource.MakeComputed(resource.NewStringProperty(""))
		}
		return plain(o.Element)
	case v.IsObject():
		m := resource.PropertyMap{}
		for k, e := range v.ObjectValue() {
			m[k] = plain(e)
		}
		return resource.NewObjectProperty(m)
	case v.IsArray():
		a := make([]resource.PropertyValue, len(v.ArrayValue()))
		for i, e := range v.ArrayValue() {
			a[i] = plain(e)
		}
		return resource.NewArrayProperty(a)
	}
	return v
}

// unknown reports whether v is (or contains) a value not known yet (preview).
func unknown(v resource.PropertyValue) bool { return v.ContainsUnknowns() }

// present reports whether m has a non-null value for k.
func present(m resource.PropertyMap, k resource.PropertyKey) bool {
	v, ok := m[k]
	return ok && !v.IsNull()
}

// withDefaults applies the connection defaults to a connection (or proxy)
// object value, keeping a secret wrapper where there was one. Unknown values
// are returned as they are.
func withDefaults(v resource.PropertyValue, isProxy bool) resource.PropertyValue {
	if v.IsSecret() {
		return resource.MakeSecret(withDefaults(v.SecretValue().Element, isProxy))
	}
	if !v.IsObject() {
		return v
	}
	m := v.ObjectValue().Copy()
	for _, d := range connectionDefaults {
		if !present(m, d.key) {
			m[d.key] = d.val
		}
	}
	if !isProxy && present(m, "proxy") {
		m["proxy"] = withDefaults(m["proxy"], true)
	}
	return resource.NewObjectProperty(m)
}

// checkFailure is one entry of CheckResponse.Failures.
type checkFailure struct{ property, reason string }

// checkInputs applies defaults to the new inputs of a remote:Command and
// reports what is missing or invalid.
func checkInputs(news resource.PropertyMap) (resource.PropertyMap, []checkFailure) {
	out := news.Copy()
	var failures []checkFailure
	if !present(out, "connection") {
		failures = append(failures, checkFailure{"connection", "missing required property 'connection'"})
	} else {
		out["connection"] = withDefaults(out["connection"], false)
		c := plain(out["connection"])
		switch {
		case c.IsComputed():
		case !c.IsObject():
			failures = append(failures, checkFailure{"connection", "connection must be an object"})
		default:
			cm := c.ObjectValue()
			if !present(cm, "host") {
				failures = append(failures, checkFailure{"connection.host", "missing required property 'connection.host'"})
			}
			if p, ok := cm["proxy"]; ok && p.IsObject() && !present(p.ObjectValue(), "host") {
				failures = append(failures, checkFailure{"connection.proxy.host", "missing required property 'connection.proxy.host'"})
			}
		}
	}
	if present(out, "logging") {
		l := plain(out["logging"])
		if l.IsString() && !loggingValues[l.StringValue()] {
			failures = append(failures, checkFailure{"logging",
				fmt.Sprintf("logging: %q is not one of stdout, stderr, stdoutAndStderr, none", l.StringValue())})
		}
	}
	for _, k := range []resource.PropertyKey{"create", "update", "delete", "stdin"} {
		if present(out, k) {
			if v := plain(out[k]); !v.IsComputed() && !v.IsString() {
				failures = append(failures, checkFailure{string(k), fmt.Sprintf("%s must be a string", k)})
			}
		}
	}
	return out, failures
}

// propDiff is the diff of one top-level input property.
type propDiff struct {
	key     resource.PropertyKey
	kind    string // add, delete, update
	replace bool
}

// diffInputs compares the input properties of the old state with the new
// inputs. A change in `triggers` replaces the resource, any other change
// updates it. Secret wrappers are ignored; an unknown new value is a change.
func diffInputs(olds, news resource.PropertyMap) []propDiff {
	var out []propDiff
	for _, k := range inputKeys {
		hasOld, hasNew := present(olds, k), present(news, k)
		var kind string
		switch {
		case !hasOld && !hasNew:
			continue
		case !hasOld:
			kind = "add"
		case !hasNew:
			kind = "delete"
		case unknown(news[k]) || !plain(olds[k]).DeepEquals(plain(news[k])):
			kind = "update"
		default:
			continue
		}
		out = append(out, propDiff{key: k, kind: kind, replace: replaceKeys[k]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// ---- values for a run ------------------------------------------------------

// connection is a remote:Connection (or its proxy) read into Go values.
type connection struct {
	host               string
	port               int
	user               string
	password           *string
	privateKey         *string
	privateKeyPassword *string
	agentSocketPath    *string
	hostKey            *string
	dialErrorLimit     int
	perDialTimeout     int
	proxy              *connection
}

// commandProps is what a run needs of a remote:Command's properties.
type commandProps struct {
	conn           *connection
	create         *string
	update         *string
	delete         *string
	stdin          *string
	environment    map[string]string
	logging        string // stdout, stderr, stdoutAndStderr or none
	addPrevOutputs bool
	stdout, stderr string // the previous outputs, from state
}

func optString(m resource.PropertyMap, k resource.PropertyKey) (*string, error) {
	if !present(m, k) {
		return nil, nil
	}
	v := plain(m[k])
	if !v.IsString() {
		return nil, fmt.Errorf("%s: expected a string, got %v", k, v.TypeString())
	}
	s := v.StringValue()
	return &s, nil
}

func optNumber(m resource.PropertyMap, k resource.PropertyKey, def int) (int, error) {
	if !present(m, k) {
		return def, nil
	}
	v := plain(m[k])
	if !v.IsNumber() {
		return 0, fmt.Errorf("%s: expected a number, got %v", k, v.TypeString())
	}
	return int(v.NumberValue()), nil
}

func readConnection(v resource.PropertyValue, isProxy bool) (*connection, error) {
	v = plain(v)
	if v.IsComputed() {
		return nil, fmt.Errorf("the connection is not known yet")
	}
	if !v.IsObject() {
		return nil, fmt.Errorf("the connection must be an object")
	}
	m := v.ObjectValue()
	c := &connection{}
	var err error
	host, err := optString(m, "host")
	if err != nil {
		return nil, err
	}
	if host == nil || *host == "" {
		return nil, fmt.Errorf("the connection has no host")
	}
	c.host = *host
	if c.port, err = optNumber(m, "port", 22); err != nil {
		return nil, err
	}
	user, err := optString(m, "user")
	if err != nil {
		return nil, err
	}
	c.user = "root"
	if user != nil {
		c.user = *user
	}
	for _, f := range []struct {
		key resource.PropertyKey
		dst **string
	}{
		{"password", &c.password}, {"privateKey", &c.privateKey},
		{"privateKeyPassword", &c.privateKeyPassword}, {"agentSocketPath", &c.agentSocketPath},
		{"hostKey", &c.hostKey},
	} {
		if *f.dst, err = optString(m, f.key); err != nil {
			return nil, err
		}
	}
	if c.dialErrorLimit, err = optNumber(m, "dialErrorLimit", 10); err != nil {
		return nil, err
	}
	if c.perDialTimeout, err = optNumber(m, "perDialTimeout", 15); err != nil {
		return nil, err
	}
	if !isProxy && present(m, "proxy") {
		if c.proxy, err = readConnection(m["proxy"], true); err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
	}
	return c, nil
}

// readCommandProps reads the properties (inputs, or state = inputs + outputs)
// of a remote:Command.
func readCommandProps(m resource.PropertyMap) (*commandProps, error) {
	p := &commandProps{logging: "stdoutAndStderr", addPrevOutputs: true}
	var err error
	if !present(m, "connection") {
		return nil, fmt.Errorf("missing required property 'connection'")
	}
	if p.conn, err = readConnection(m["connection"], false); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		key resource.PropertyKey
		dst **string
	}{{"create", &p.create}, {"update", &p.update}, {"delete", &p.delete}, {"stdin", &p.stdin}} {
		if *f.dst, err = optString(m, f.key); err != nil {
			return nil, err
		}
	}
	if present(m, "environment") {
		env := plain(m["environment"])
		if !env.IsObject() {
			return nil, fmt.Errorf("environment: expected a map of strings")
		}
		p.environment = map[string]string{}
		for k, v := range env.ObjectValue() {
			if v.IsNull() {
				continue
			}
			if !v.IsString() {
				return nil, fmt.Errorf("environment.%s: expected a string, got %v", k, v.TypeString())
			}
			p.environment[string(k)] = v.StringValue()
		}
	}
	if l, err := optString(m, "logging"); err != nil {
		return nil, err
	} else if l != nil {
		p.logging = *l
	}
	if present(m, "addPreviousOutputInEnv") {
		b := plain(m["addPreviousOutputInEnv"])
		if !b.IsBool() {
			return nil, fmt.Errorf("addPreviousOutputInEnv: expected a boolean, got %v", b.TypeString())
		}
		p.addPrevOutputs = b.BoolValue()
	}
	for _, f := range []struct {
		key resource.PropertyKey
		dst *string
	}{{"stdout", &p.stdout}, {"stderr", &p.stderr}} {
		if present(m, f.key) {
			if v := plain(m[f.key]); v.IsString() {
				*f.dst = v.StringValue()
			}
		}
	}
	return p, nil
}

// outputsFrom returns the state to store for a remote:Command: its inputs
// (secret where they were given as secrets; the connection always, as in the
// upstream schema) plus stdout and stderr.
func outputsFrom(inputs resource.PropertyMap, stdout, stderr resource.PropertyValue) resource.PropertyMap {
	out := resource.PropertyMap{}
	for _, k := range inputKeys {
		if present(inputs, k) {
			out[k] = inputs[k]
		}
	}
	if present(out, "connection") && !out["connection"].IsSecret() && !out["connection"].IsComputed() {
		out["connection"] = resource.MakeSecret(out["connection"])
	}
	out["stdout"] = stdout
	out["stderr"] = stderr
	return out
}
