// Command grafana-validate checks Grafana dashboard JSON models strictly with Grafana's own
// schema (github.com/grafana/grafana-foundation-sdk/go, pinned in ../go.mod): required fields,
// types, unknown keys and the options of each panel plugin. It also requires what the schema
// cannot state but users rely on: a description and a unit on every panel but rows.
//
//	grafana-validate dashboard.json...
//
// Prints one line per problem, "file: path: message", sorted, and exits 1 when there is any.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// problems flattens the SDK's errors. Its strict decoder returns an empty, non-nil error list
// on success, so the entries are counted rather than the error compared with nil.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	var list cog.BuildErrors
	if errors.As(err, &list) {
		out := make([]string, 0, len(list))
		for _, e := range list {
			out = append(out, e.Path+": "+e.Message)
		}
		return out
	}
	return []string{err.Error()}
}

// documented: every panel but rows has a description and a unit.
func documented(raw []byte) []string {
	var d struct {
		Panels []map[string]any `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return []string{err.Error()}
	}
	var out []string
	for i, p := range d.Panels {
		if p["type"] == "row" {
			continue
		}
		if s, _ := p["description"].(string); s == "" {
			out = append(out, fmt.Sprintf("panels[%d].description: missing (%v)", i, p["title"]))
		}
		config, _ := p["fieldConfig"].(map[string]any)
		defaults, _ := config["defaults"].(map[string]any)
		if s, _ := defaults["unit"].(string); s == "" {
			out = append(out, fmt.Sprintf("panels[%d].fieldConfig.defaults.unit: missing (%v)", i, p["title"]))
		}
	}
	return out
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: grafana-validate dashboard.json...")
		os.Exit(2)
	}
	// Without the plugin registry, panel options and targets are not checked at all.
	plugins.RegisterDefaultPlugins()
	failed := false
	for _, file := range os.Args[1:] {
		raw, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		var d dashboard.Dashboard
		found := problems(d.UnmarshalJSONStrict(raw))
		found = append(found, problems(d.Validate())...)
		found = append(found, documented(raw)...)
		sort.Strings(found)
		for _, p := range found {
			fmt.Printf("%s: %s\n", file, p)
		}
		failed = failed || len(found) > 0
	}
	if failed {
		os.Exit(1)
	}
}
