//go:build tools

// Package tools pins the Go programs the image and chart checks use: crane (builds, pushes,
// validates and pulls the image without Docker), helm (lints and renders the chart) and, in
// kstatus/, the health model of sigs.k8s.io/cli-utils that Flux applies to monitors, and in
// grafana-validate/, Grafana's own dashboard schema, strict. They are
// built from this module, and cached, by `e2e/cluster.sh build-tools`. Rendered manifests are
// validated by the loopback API server itself (server-side dry run, strict field validation),
// which knows the exact Kubernetes, CRD and admission-policy rules.
package tools

import (
	_ "github.com/google/go-containerregistry/cmd/crane"
	_ "helm.sh/helm/v3/cmd/helm"
)
