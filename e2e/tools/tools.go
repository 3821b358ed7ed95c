//go:build tools

// Package tools pins the Go programs the image and chart checks use: crane (builds, pushes,
// validates and pulls the image without Docker) and helm (lints and renders the chart). They are
// built from this module, and cached, by `e2e/cluster.sh build-tools`. Rendered manifests are
// validated by the loopback API server itself (server-side dry run, strict field validation),
// which knows the exact Kubernetes, CRD and admission-policy rules.
package tools

import (
	_ "github.com/google/go-containerregistry/cmd/crane"
	_ "helm.sh/helm/v3/cmd/helm"
)
