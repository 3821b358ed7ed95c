//go:build tools

// Package promop pins the Prometheus Operator release the e2e tests run.
package promop

import _ "github.com/prometheus-operator/prometheus-operator/cmd/operator"
