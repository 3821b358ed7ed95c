//go:build tools

// Package ksm pins the kube-state-metrics release the side-by-side tests and benchmarks compare
// tapmon with. `go build k8s.io/kube-state-metrics/v2` in this module builds it (`go install
// module@version` is not used: it needs the module proxy's version list).
package ksm

import _ "k8s.io/kube-state-metrics/v2"
