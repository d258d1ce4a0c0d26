// Package sendertest checks a sender's JSON summary against sender.SummarySchema in tests: a
// small JSON Schema validator for the keywords the schema uses (type, const, required,
// properties, additionalProperties, minimum, maximum, minLength). Test support only: no
// production code imports it.
package sendertest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/probekit/probekit/shared/sender"
)

// ValidateSummary checks one JSON summary line against sender.SummarySchema and the relations
// the schema cannot state (received + lost = sent, loss_pct = 100 × lost / sent).
func ValidateSummary(line []byte) error {
	var schema map[string]any
	if err := json.Unmarshal(sender.SummarySchema, &schema); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if err := Validate(schema, line); err != nil {
		return err
	}
	var s sender.Summary
	if err := json.Unmarshal(line, &s); err != nil {
		return err
	}
	if s.Received+s.Lost != s.Sent {
		return fmt.Errorf("received %d + lost %d != sent %d", s.Received, s.Lost, s.Sent)
	}
	if s.Sent > 0 && math.Abs(s.LossPct-100*float64(s.Lost)/float64(s.Sent)) > 1e-9 {
		return fmt.Errorf("loss_pct %g, lost %d of %d", s.LossPct, s.Lost, s.Sent)
	}
	if (s.RTTms != nil) != (s.Received > 0) {
		return fmt.Errorf("rtt_ms %v with %d received", s.RTTms, s.Received)
	}
	return nil
}

// Validate checks the JSON document doc against schema (decoded JSON Schema) and returns every
// violation found, joined.
func Validate(schema map[string]any, doc []byte) error {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	var errs []error
	check(schema, v, "$", &errs)
	return errors.Join(errs...)
}

func typeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return "integer"
		}
		if f, err := x.Float64(); err == nil && f == math.Trunc(f) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}

func typeMatches(want string, v any) bool {
	got := typeOf(v)
	return got == want || want == "number" && got == "integer"
}

func check(schema map[string]any, v any, path string, errs *[]error) {
	fail := func(format string, a ...any) { *errs = append(*errs, fmt.Errorf(path+": "+format, a...)) }
	for kw := range schema {
		switch kw {
		case "$schema", "$id", "title", "description", "type", "const", "required", "properties",
			"additionalProperties", "minimum", "maximum", "minLength":
		default:
			fail("schema keyword %q not supported by this validator", kw)
		}
	}
	if t, ok := schema["type"]; ok {
		var types []string
		switch x := t.(type) {
		case string:
			types = []string{x}
		case []any:
			for _, e := range x {
				s, _ := e.(string)
				types = append(types, s)
			}
		}
		ok := false
		for _, want := range types {
			ok = ok || typeMatches(want, v)
		}
		if !ok {
			fail("type %s, want %v", typeOf(v), types)
			return
		}
	}
	if c, ok := schema["const"]; ok && fmt.Sprint(c) != fmt.Sprint(v) {
		fail("%v, want %v", v, c)
	}
	if n, ok := v.(json.Number); ok {
		f, _ := n.Float64()
		if m, ok := schema["minimum"].(float64); ok && f < m {
			fail("%v below the minimum %v", f, m)
		}
		if m, ok := schema["maximum"].(float64); ok && f > m {
			fail("%v above the maximum %v", f, m)
		}
	}
	if s, ok := v.(string); ok {
		if m, ok := schema["minLength"].(float64); ok && float64(len([]rune(s))) < m {
			fail("%q shorter than %v", s, m)
		}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return
	}
	if req, ok := schema["required"].([]any); ok {
		for _, r := range req {
			if _, ok := obj[r.(string)]; !ok {
				fail("missing %q", r)
			}
		}
	}
	props, _ := schema["properties"].(map[string]any)
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if ps, ok := props[k].(map[string]any); ok {
			check(ps, obj[k], path+"."+k, errs)
		} else if ap, ok := schema["additionalProperties"].(bool); ok && !ap {
			fail("unexpected property %q", k)
		}
	}
}
