#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for tapmon's end-to-end tests: etcd, kube-apiserver and
# kube-controller-manager (garbage collector and namespace controllers only), each its own process
# from one binary built from Go modules (e2e/controlplane). No Docker, no kubelet, no nodes.
#
#   e2e/cluster.sh build                         build the binary (cached), print its path
#   e2e/cluster.sh build-ksm                     build kube-state-metrics from e2e/ksm (cached), print its path
#   e2e/cluster.sh build-prometheus-operator     build the Prometheus Operator from e2e/prometheus-operator (cached), print
#                                                its path
#   e2e/cluster.sh build-tools                   build crane, helm, kstatus and grafana-validate from e2e/tools (cached), print the
#                                                directory holding them
#   e2e/cluster.sh up STATE_DIR                  start a cluster; prints export KUBECONFIG=...
#   e2e/cluster.sh down [--remove] STATE_DIR     stop it (TERM, then KILL after a deadline)
#   e2e/cluster.sh restart-apiserver [--kill] STATE_DIR
#                                                stop (TERM, or KILL: a crash) and start kube-apiserver,
#                                                same flags and port; returns once it is ready
#   e2e/cluster.sh stop-apiserver [--kill] STATE_DIR   stop kube-apiserver only
#   e2e/cluster.sh start-apiserver STATE_DIR     start it again and wait until ready
#   e2e/cluster.sh status STATE_DIR              each process: running or not
#   e2e/cluster.sh kubectl STATE_DIR ARGS...     the bundled kubectl, as cluster admin
#   e2e/cluster.sh selftest [STATE_DIR]          up, check what tests rely on, restart the
#                                                apiserver, down; ends 'selftest: N passed, N failed'
#
# Environment:
#   TAPMON_CACHE                 where built binaries are kept (default $XDG_CACHE_HOME/tapmon)
#   TAPMON_CONTROLPLANE_BIN      use this binary instead of building one
#   TAPMON_E2E_TIMEOUT           seconds to wait for each component to be ready (default 120)
#   TAPMON_E2E_STOP_TIMEOUT      seconds between TERM and KILL (default 30)
#   TAPMON_E2E_APISERVER_FLAGS   extra kube-apiserver flags, space-separated (kept for restarts)
#   TAPMON_E2E_KCM_FLAGS         extra kube-controller-manager flags, space-separated
#
# STATE_DIR holds everything of one cluster: env (KEY=VALUE lines for test code), admin.kubeconfig,
# pki/, etcd/, logs/*.log, *.pid and *.args (each component's exact argv, one argument a line).
set -euo pipefail

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly E2E_DIR
readonly SRC_DIR=$E2E_DIR/controlplane
readonly COMPONENTS=(etcd kube-apiserver kube-controller-manager) # start order; stop is reversed
readonly SA_ISSUER=https://kubernetes.default.svc.cluster.local
readonly POLL=0.2

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
need() { for c; do command -v "$c" >/dev/null || die "needs '$c' on PATH"; done; }

# Runs "$@" in the background and says every 30 s how long it has been running, so that a first
# build of several minutes is not silence; returns its exit status.
with_progress() {
	local what=$1 start=$SECONDS pid ticks=0
	shift
	"$@" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		if ((++ticks % 30 == 0)); then log "$what: $((SECONDS - start))s so far"; fi
	done
	wait "$pid"
}

# ---------------------------------------------------------------------------------------- build

# Go programs built once into the cache (TAPMON_CACHE), keyed by a hash of everything they are
# built from, so a change to a pinned module rebuilds and nothing else does. Prints the cached
# directory, first building into it when any of BINARIES is missing:
#   go_cached NAME HASH "BINARIES..." WHAT SRC LDFLAGS [OUT=]PACKAGE...
# Each PACKAGE is built in module SRC (CGO off, -trimpath, LDFLAGS), named OUT when given.
go_cached() {
	local name=$1 hash=$2 binaries=$3 what=$4 src=$5 ldflags=$6 dir tmp bin pkg out label missing= start=$SECONDS
	shift 6
	dir=${TAPMON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tapmon}/$name-$hash
	for bin in $binaries; do [[ -x $dir/$bin ]] || missing=1; done
	if [[ -z $missing ]]; then
		printf '%s\n' "$dir"
		return
	fi
	need go
	log "building $what into $dir"
	mkdir -p "$(dirname "$dir")"
	tmp=$(mktemp -d "$dir.tmp.XXXXXX")
	chmod 755 "$tmp"
	for pkg in "$@"; do
		out=$tmp/
		if [[ $pkg == *=* ]]; then
			out=$tmp/${pkg%%=*}
			pkg=${pkg#*=}
		fi
		label=${out#"$tmp"/}
		if ! with_progress "building ${label:-$pkg}" \
			bash -c 'cd "$1" && CGO_ENABLED=0 go build -trimpath -ldflags "$2" -o "$3" "$4"' _ "$src" "$ldflags" "$out" "$pkg"; then
			rm -rf "$tmp"
			die "go build of $pkg failed"
		fi
	done
	# Another build of the same hash may have finished first; either copy is the same.
	mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
	log "built in $((SECONDS - start))s"
	printf '%s\n' "$dir"
}

# The hash of files in DIR, and of any more text on stdin... as a cache key.
files_hash() {
	local dir=$1
	shift
	(cd "$dir" && cat "$@") | sha256sum | cut -c1-16
}

# kube-state-metrics, for side-by-side tests and benchmarks: built from the Go module pinned in
# e2e/ksm.
cmd_build_ksm() {
	(($# == 0)) || die "usage: cluster.sh build-ksm"
	local dir
	dir=$(go_cached ksm "$(files_hash "$E2E_DIR/ksm" go.mod go.sum tools.go)" kube-state-metrics \
		"kube-state-metrics (about 3 minutes on two cores)" "$E2E_DIR/ksm" "" k8s.io/kube-state-metrics/v2) || exit 1
	printf '%s\n' "$dir/kube-state-metrics"
}

# The Prometheus Operator, so the e2e suite checks what it generates from tapmon's published objects
# instead of hand-written expectations: built from the Go module pinned in e2e/prometheus-operator
# (its own module: it needs the Kubernetes libraries it was released with, not e2e/tools' newer ones).
cmd_build_prometheus_operator() {
	(($# == 0)) || die "usage: cluster.sh build-prometheus-operator"
	local src=$E2E_DIR/prometheus-operator dir version ldflags
	version=$(sed -n 's#^require github.com/prometheus-operator/prometheus-operator v\([0-9.]*\)$#\1#p' "$src/go.mod")
	[[ -n $version ]] || die "e2e/prometheus-operator/go.mod: no prometheus-operator version"
	# The version ends up in the default config-reloader image name and --version, as upstream's
	# own build stamps it.
	ldflags="-s -w -X github.com/prometheus/common/version.Version=$version"
	dir=$(go_cached prometheus-operator "$(echo "$ldflags" | files_hash "$src" go.mod go.sum tools.go -)" prometheus-operator \
		"the Prometheus Operator $version (about 4 minutes on two cores)" "$src" "$ldflags" \
		prometheus-operator=github.com/prometheus-operator/prometheus-operator/cmd/operator) || exit 1
	printf '%s\n' "$dir/prometheus-operator"
}

# crane, helm, kstatus and the Grafana schema validator, for the image, the chart and health and
# dashboard checks: built from the Go module pinned in e2e/tools.
cmd_build_tools() {
	(($# == 0)) || die "usage: cluster.sh build-tools"
	local src=$E2E_DIR/tools helm_version kube_minor ldflags pkg
	# helm stamps its version and the Kubernetes version `helm template` assumes offline (else
	# 1.20) from link flags, as its own Makefile does.
	helm_version=$(sed -n 's#^\s*helm.sh/helm/v3 \(v[0-9.]*\)$#\1#p' "$src/go.mod")
	kube_minor=$(sed -n 's#^\s*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$src/go.mod")
	[[ -n $helm_version && -n $kube_minor ]] || die "e2e/tools/go.mod: no helm or client-go version"
	ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
	for pkg in chartutil lint/rules; do
		ldflags+=" -X helm.sh/helm/v3/pkg/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/$pkg.k8sVersionMinor=$kube_minor"
	done
	go_cached tools "$(echo "$ldflags" | files_hash "$src" go.mod go.sum tools.go kstatus/main.go grafana-validate/main.go -)" \
		"helm crane kstatus grafana-validate" "crane, helm, kstatus and grafana-validate (a few minutes on two cores)" \
		"$src" "$ldflags" github.com/google/go-containerregistry/cmd/crane helm.sh/helm/v3/cmd/helm ./kstatus ./grafana-validate
}

# The control plane. The cache key covers everything the binary is built from: the code, and
# go.mod/go.sum (which pin Kubernetes, hence the version stamped in by -ldflags).
cmd_build() {
	(($# == 0)) || die "usage: cluster.sh build"
	local hash dir kube_version build_date minor ldflags="-s -w" pkg
	hash=$(files_hash "$SRC_DIR" go.mod go.sum main.go)
	dir=${TAPMON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tapmon}/controlplane-$hash
	# The link flags need go and the module graph: worked out only when building.
	if [[ ! -x $dir/tapmon-controlplane ]]; then
		need go
		kube_version=$(cd "$SRC_DIR" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
		build_date=$(cd "$SRC_DIR" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
		[[ $kube_version =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || die "unexpected k8s.io/kubernetes version '$kube_version'"
		minor=${BASH_REMATCH[1]}
		# /version and kubectl version report these; without them they say v0.0.0-master.
		for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
			ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
			ldflags+=" -X $pkg.gitTreeState=archive -X $pkg.gitCommit= -X $pkg.buildDate=$build_date"
		done
	fi
	dir=$(go_cached controlplane "$hash" tapmon-controlplane \
		"tapmon-controlplane (Kubernetes ${kube_version:-}; a cold build takes 5 to 10 minutes on two cores)" \
		"$SRC_DIR" "$ldflags" tapmon-controlplane=.) || exit 1
	printf '%s\n' "$dir/tapmon-controlplane"
}

# ---------------------------------------------------------------------------------------- state

# Absolute path of a state dir; refuses characters that would need quoting in the env file.
state_path() {
	local dir=${1:-}
	[[ -n $dir ]] || die "missing STATE_DIR"
	[[ $dir == /* ]] || dir=$PWD/$dir
	dir=$(realpath -m "$dir")
	[[ $dir =~ ^[A-Za-z0-9._/+-]+$ ]] || die "STATE_DIR may only hold letters, digits and ._/+- (got '$dir')"
	printf '%s' "$dir"
}

# Loads STATE_DIR/env into ENV_* variables (no `source`: the file is data).
load_env() {
	local state=$1 key value
	[[ -f $state/env ]] || die "$state/env not found: not a cluster state dir (run 'up' first)"
	while IFS='=' read -r key value; do
		[[ $key =~ ^TAPMON_E2E_[A-Z0-9_]+$ ]] && printf -v "ENV_${key#TAPMON_E2E_}" '%s' "$value"
	done <"$state/env"
	[[ -n ${ENV_BIN:-} && -x $ENV_BIN ]] || die "binary '${ENV_BIN:-}' from $state/env is missing; rebuild and run 'up' again"
}

# --------------------------------------------------------------------------------------- processes

# True when PID is a live (not zombie) tapmon-controlplane running COMPONENT of STATE_DIR (every
# component's arguments name a file in its state dir), so a reused PID is never signalled.
is_component() {
	local pid=$1 component=$2 state=$3 status arg args
	[[ -r /proc/$pid/stat ]] || return 1
	status=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[[ $status != Z && $status != X ]] || return 1
	mapfile -d '' -t args <"/proc/$pid/cmdline" 2>/dev/null || return 1
	[[ ${args[0]:-} == */tapmon-controlplane && ${args[1]:-} == "$component" ]] || return 1
	for arg in "${args[@]:2}"; do
		[[ $arg != *"=$state/"* ]] || return 0
	done
	return 1
}

pid_of() { # prints the PID of a running COMPONENT of STATE_DIR, or fails
	local state=$1 component=$2 pid
	[[ -f $state/$component.pid ]] || return 1
	pid=$(<"$state/$component.pid")
	[[ $pid =~ ^[0-9]+$ ]] && is_component "$pid" "$component" "$state" || return 1
	printf '%s' "$pid"
}

# Starts COMPONENT of STATE_DIR from its .args file, in its own session (a Ctrl-C or process-group
# kill aimed at the caller does not reach it; only `down` stops it), appending to its log.
start_component() {
	local state=$1 component=$2 pid args
	mapfile -t args <"$state/$component.args"
	! pid_of "$state" "$component" >/dev/null || die "$component is already running"
	printf '\n==== %s: starting %s\n' "$(date -u +%FT%TZ)" "$component" >>"$state/logs/$component.log"
	setsid "$ENV_BIN" "$component" "${args[@]}" </dev/null >>"$state/logs/$component.log" 2>&1 &
	pid=$!
	printf '%s\n' "$pid" >"$state/$component.pid"
	# setsid only forks when the caller leads its process group, which a script's background job
	# never does; check anyway, since a wrong PID here would make `down` miss the process.
	local deadline=$((SECONDS + 5))
	until is_component "$pid" "$component" "$state"; do
		if [[ ! -d /proc/$pid ]] || ((SECONDS >= deadline)); then
			die "$component (PID $pid) exited at once; see $state/logs/$component.log:
$(tail -n 20 "$state/logs/$component.log")"
		fi
		sleep "$POLL"
	done
}

# Stops COMPONENT: SIGNAL (default TERM), then KILL after the deadline. Quiet when it is not running.
stop_component() {
	local state=$1 component=$2 signal=${3:-TERM} pid deadline
	if ! pid=$(pid_of "$state" "$component"); then
		rm -f "$state/$component.pid"
		return 0
	fi
	kill "-$signal" "$pid" 2>/dev/null || true
	deadline=$((SECONDS + ${TAPMON_E2E_STOP_TIMEOUT:-30}))
	while is_component "$pid" "$component" "$state"; do
		if ((SECONDS >= deadline)); then
			log "$component (PID $pid) still running after $signal; sending KILL"
			kill -KILL "$pid" 2>/dev/null || true
			deadline=$((SECONDS + 10))
			while is_component "$pid" "$component" "$state"; do
				((SECONDS < deadline)) || die "$component (PID $pid) survived KILL"
				sleep "$POLL"
			done
			break
		fi
		sleep "$POLL"
	done
	wait "$pid" 2>/dev/null || true # reaps it when this shell started it
	rm -f "$state/$component.pid"
	log "stopped $component (PID $pid, $signal)"
}

# Polls CHECK... until it succeeds; fails at the deadline or as soon as COMPONENT has exited.
wait_ready() {
	local state=$1 component=$2 start=$SECONDS deadline
	shift 2
	deadline=$((SECONDS + ${TAPMON_E2E_TIMEOUT:-120}))
	until "$@"; do
		pid_of "$state" "$component" >/dev/null ||
			die "$component exited before it was ready; see $state/logs/$component.log:
$(tail -n 30 "$state/logs/$component.log")"
		((SECONDS < deadline)) ||
			die "$component not ready after ${TAPMON_E2E_TIMEOUT:-120}s; see $state/logs/$component.log"
		sleep "$POLL"
	done
	log "$component ready after $((SECONDS - start))s"
}

etcd_healthy() {
	curl -fsS --max-time 2 "$ENV_ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"'
}

apiserver_ready() {
	[[ $(curl -sS --max-time 2 --cacert "$ENV_CA_CERT" -o /dev/null -w '%{http_code}' \
		"$ENV_SERVER/readyz" 2>/dev/null) == 200 ]]
}

start_apiserver() {
	local state=$1
	start_component "$state" kube-apiserver
	wait_ready "$state" kube-apiserver apiserver_ready
}

# The controller manager serves no port here; its log says when the garbage collector has synced
# its informers (the namespace controller starts before it). Only the log since the last start counts.
KCM_LOG_OFFSET=0
controllers_ready() {
	tail -c "+$((KCM_LOG_OFFSET + 1))" "$1/logs/kube-controller-manager.log" |
		grep -q 'Garbage collector: all resource monitors have synced'
}

start_controller_manager() {
	local state=$1
	KCM_LOG_OFFSET=$(stat -c %s "$state/logs/kube-controller-manager.log" 2>/dev/null || echo 0)
	start_component "$state" kube-controller-manager
	wait_ready "$state" kube-controller-manager controllers_ready "$state"
}

# -------------------------------------------------------------------------------------------- up

write_pki() {
	local pki=$1
	mkdir -p "$pki"
	cat >"$pki/openssl.cnf" <<-'EOF'
		[req]
		distinguished_name = dn
		prompt = no
		[dn]
		[ca]
		basicConstraints = critical, CA:TRUE
		keyUsage = critical, keyCertSign, cRLSign
		subjectKeyIdentifier = hash
		[serving]
		basicConstraints = critical, CA:FALSE
		keyUsage = critical, digitalSignature, keyEncipherment
		extendedKeyUsage = serverAuth
		subjectAltName = IP:127.0.0.1, DNS:localhost
		subjectKeyIdentifier = hash
		authorityKeyIdentifier = keyid
	EOF
	(
		cd "$pki"
		umask 077
		openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 365 -config openssl.cnf \
			-extensions ca -subj /CN=tapmon-e2e-ca -keyout ca.key -out ca.crt
		openssl req -new -newkey rsa:2048 -nodes -sha256 -config openssl.cnf \
			-subj /CN=tapmon-e2e-apiserver -keyout serving.key -out serving.csr
		openssl x509 -req -sha256 -days 365 -in serving.csr -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
			-extfile openssl.cnf -extensions serving -out serving.crt
		# One RSA key signs service-account tokens; its public half verifies them.
		openssl genrsa -out sa.key 2048
		openssl rsa -in sa.key -pubout -out sa.pub
		openssl rand -hex 32 >admin.token
		printf '%s,admin,tapmon-e2e-admin,"system:masters"\n' "$(<admin.token)" >tokens.csv
		rm -f serving.csr
		chmod 644 ca.crt serving.crt sa.pub
	) 2>"$pki/openssl.log" || die "openssl failed: $(cat "$pki/openssl.log")"
}

write_kubeconfig() {
	local state=$1
	(
		umask 077
		cat >"$state/admin.kubeconfig" <<-EOF
			apiVersion: v1
			kind: Config
			clusters:
			- name: tapmon-e2e
			  cluster:
			    server: $ENV_SERVER
			    certificate-authority-data: $(base64 -w0 <"$ENV_CA_CERT")
			users:
			- name: tapmon-e2e-admin
			  user:
			    token: $(<"$state/pki/admin.token")
			contexts:
			- name: tapmon-e2e
			  context:
			    cluster: tapmon-e2e
			    user: tapmon-e2e-admin
			current-context: tapmon-e2e
		EOF
	)
}

# One argument a line; read back with mapfile, so restarts use exactly the same flags.
write_args() {
	local state=$1 component=$2
	shift 2
	printf '%s\n' "$@" >"$state/$component.args"
}

cmd_up() {
	(($# == 1)) || die "usage: cluster.sh up STATE_DIR"
	need openssl curl sha256sum base64 setsid realpath
	local state bin ports
	state=$(state_path "$1")
	if [[ -e $state ]]; then
		[[ -d $state && -z $(ls -A "$state") ]] ||
			die "$state exists and is not empty; 'down --remove' it or pick another dir"
	fi
	bin=${TAPMON_CONTROLPLANE_BIN:-$(cmd_build)}
	bin=$(realpath "$bin")
	[[ -x $bin && $(basename "$bin") == tapmon-controlplane ]] || die "not a tapmon-controlplane binary: $bin"
	local start=$SECONDS
	mkdir -p "$state/logs" "$state/etcd"
	chmod 700 "$state" "$state/etcd"

	mapfile -t ports < <("$bin" free-ports 2)
	((${#ports[@]} == 2)) || die "could not find free loopback ports"
	write_pki "$state/pki"

	cat >"$state/env" <<-EOF
		TAPMON_E2E_KUBE_VERSION=$("$bin" version)
		TAPMON_E2E_BIN=$bin
		TAPMON_E2E_STATE_DIR=$state
		TAPMON_E2E_KUBECONFIG=$state/admin.kubeconfig
		TAPMON_E2E_SERVER=https://127.0.0.1:${ports[1]}
		TAPMON_E2E_APISERVER_PORT=${ports[1]}
		TAPMON_E2E_ETCD_URL=http://127.0.0.1:${ports[0]}
		TAPMON_E2E_ETCD_PORT=${ports[0]}
		TAPMON_E2E_CA_CERT=$state/pki/ca.crt
		TAPMON_E2E_ADMIN_TOKEN_FILE=$state/pki/admin.token
		TAPMON_E2E_SA_ISSUER=$SA_ISSUER
		TAPMON_E2E_LOG_DIR=$state/logs
	EOF
	load_env "$state"
	write_kubeconfig "$state"

	write_args "$state" etcd \
		--data-dir="$state/etcd" \
		--listen-client-url="$ENV_ETCD_URL"
	# --shutdown-watch-termination-grace-period: on TERM, end open watches and exit in about a
	# second; by default the apiserver waits up to its 60 s request timeout for watchers to leave.
	# shellcheck disable=SC2086 # the extra flags are split on spaces on purpose
	write_args "$state" kube-apiserver \
		--etcd-servers="$ENV_ETCD_URL" \
		--bind-address=127.0.0.1 \
		--secure-port="$ENV_APISERVER_PORT" \
		--advertise-address=127.0.0.1 \
		--endpoint-reconciler-type=none \
		--cert-dir="$state/pki/apiserver" \
		--tls-cert-file="$state/pki/serving.crt" \
		--tls-private-key-file="$state/pki/serving.key" \
		--service-cluster-ip-range=10.0.0.0/24 \
		--service-account-issuer="$SA_ISSUER" \
		--service-account-key-file="$state/pki/sa.pub" \
		--service-account-signing-key-file="$state/pki/sa.key" \
		--token-auth-file="$state/pki/tokens.csv" \
		--authorization-mode=RBAC \
		--disable-admission-plugins=ServiceAccount \
		--profiling=false \
		--shutdown-watch-termination-grace-period=5s \
		${TAPMON_E2E_APISERVER_FLAGS:-}
	# shellcheck disable=SC2086
	write_args "$state" kube-controller-manager \
		--kubeconfig="$state/admin.kubeconfig" \
		--controllers=garbage-collector-controller,namespace-controller,clusterrole-aggregation-controller \
		--leader-elect=false \
		--secure-port=0 \
		${TAPMON_E2E_KCM_FLAGS:-}

	# On any failure from here on, stop what was started; the state dir stays for its logs.
	trap 'log "up failed; stopping what was started (logs stay in $state/logs)"; stop_all "$state"' EXIT
	start_component "$state" etcd
	wait_ready "$state" etcd etcd_healthy
	start_apiserver "$state"
	start_controller_manager "$state"
	trap - EXIT
	log "cluster up in $((SECONDS - start))s: $ENV_SERVER (Kubernetes $ENV_KUBE_VERSION)"
	printf 'export KUBECONFIG=%s\n' "$ENV_KUBECONFIG"
}

stop_all() {
	local state=$1 i
	for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
		stop_component "$state" "${COMPONENTS[i]}"
	done
}

# ------------------------------------------------------------------------------------ other verbs

cmd_down() {
	local remove=0
	if [[ ${1:-} == --remove ]]; then
		remove=1
		shift
	fi
	(($# == 1)) || die "usage: cluster.sh down [--remove] STATE_DIR"
	local state
	state=$(state_path "$1")
	[[ -f $state/env ]] || die "$state/env not found: not a cluster state dir"
	stop_all "$state"
	if ((remove)); then
		rm -rf "$state"
		log "removed $state"
	fi
}

cmd_apiserver() { # stop|start|restart [--kill] STATE_DIR
	local verb=$1 signal=TERM
	shift
	if [[ $verb != start && ${1:-} == --kill ]]; then
		signal=KILL
		shift
	fi
	(($# == 1)) || die "usage: cluster.sh $verb-apiserver $([[ $verb == start ]] || echo '[--kill] ')STATE_DIR"
	local state
	state=$(state_path "$1")
	load_env "$state"
	[[ $verb == start ]] || stop_component "$state" kube-apiserver "$signal"
	[[ $verb == stop ]] || start_apiserver "$state"
}

cmd_status() {
	(($# == 1)) || die "usage: cluster.sh status STATE_DIR"
	local state component pid rc=0
	state=$(state_path "$1")
	load_env "$state"
	for component in "${COMPONENTS[@]}"; do
		if pid=$(pid_of "$state" "$component"); then
			printf '%-24s running (PID %s)\n' "$component" "$pid"
		else
			printf '%-24s stopped\n' "$component"
			rc=1
		fi
	done
	printf 'server: %s\n' "$ENV_SERVER"
	return "$rc"
}

cmd_kubectl() {
	(($# >= 1)) || die "usage: cluster.sh kubectl STATE_DIR ARGS..."
	local state
	state=$(state_path "$1")
	shift
	load_env "$state"
	exec "$ENV_BIN" kubectl --kubeconfig="$ENV_KUBECONFIG" "$@"
}

# -------------------------------------------------------------------------------------- selftest

kc() { "$ENV_BIN" kubectl --kubeconfig="$ENV_KUBECONFIG" "$@"; }

# Each check prints what it saw; any failing command fails the check (see run_isolated).
check_readyz() { [[ $(kc get --raw /readyz) == ok ]]; }

check_version() {
	local server client
	server=$(kc get --raw /version | grep -o '"gitVersion": *"[^"]*"')
	client=$(kc version --client | grep -o 'Client Version: .*')
	log "  server $server; $client"
	[[ $server == *"\"$ENV_KUBE_VERSION\"" && $client == "Client Version: $ENV_KUBE_VERSION" ]]
}

check_namespace() { kc create namespace selftest >/dev/null; }

check_crd_status() {
	kc apply -f - >/dev/null <<-'EOF'
		apiVersion: apiextensions.k8s.io/v1
		kind: CustomResourceDefinition
		metadata:
		  name: widgets.selftest.tapmon.dev
		spec:
		  group: selftest.tapmon.dev
		  scope: Namespaced
		  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
		  versions:
		  - name: v1
		    served: true
		    storage: true
		    subresources: {status: {}}
		    schema:
		      openAPIV3Schema:
		        type: object
		        x-kubernetes-preserve-unknown-fields: true
	EOF
	kc wait --for=condition=Established --timeout=60s crd/widgets.selftest.tapmon.dev >/dev/null
	kc -n selftest apply -f - >/dev/null <<-'EOF'
		apiVersion: selftest.tapmon.dev/v1
		kind: Widget
		metadata: {name: w1}
		spec: {size: 3}
	EOF
	kc -n selftest patch widget w1 --subresource=status --type=merge -p '{"status":{"phase":"Ready"}}' >/dev/null
	# With the status subresource on, a status change through the main resource is dropped.
	kc -n selftest patch widget w1 --type=merge -p '{"status":{"phase":"Ignored"},"spec":{"size":4}}' >/dev/null
	local got
	got=$(kc -n selftest get widget w1 -o jsonpath='{.status.phase} {.spec.size}')
	log "  widget w1: status.phase and spec.size = $got"
	[[ $got == "Ready 4" ]]
}

check_token_request() {
	kc -n selftest create serviceaccount tester >/dev/null
	kc -n selftest create token tester --duration=10m >"$SELFTEST_STATE/tester.token"
	local SA_TOKEN
	SA_TOKEN=$(<"$SELFTEST_STATE/tester.token")
	[[ $SA_TOKEN =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]]
	local who
	who=$(kc --token="$SA_TOKEN" auth whoami -o jsonpath='{.status.userInfo.username}')
	log "  token authenticates as $who"
	[[ $who == system:serviceaccount:selftest:tester ]]
}

check_rbac() {
	local out SA_TOKEN
	SA_TOKEN=$(<"$SELFTEST_STATE/tester.token")
	if out=$(kc --token="$SA_TOKEN" -n selftest get configmaps 2>&1); then
		log "  listing configmaps was allowed without a grant"
		return 1
	fi
	log "  without a grant: ${out%%$'\n'*}"
	[[ $out == *Forbidden* ]]
	kc -n selftest create role cm-reader --verb=get,list --resource=configmaps >/dev/null
	kc -n selftest create rolebinding cm-reader --role=cm-reader --serviceaccount=selftest:tester >/dev/null
	kc --token="$SA_TOKEN" -n selftest get configmaps >/dev/null 2>&1
	[[ $(kc --token="$SA_TOKEN" -n selftest auth can-i delete configmaps || true) == no ]]
}

# A ConfigMap owned by OWNER_KIND/OWNER_NAME is deleted by the garbage collector once the owner is.
gc_case() {
	local api_version=$1 kind=$2 name=$3 dependent=$4 uid start=$SECONDS
	uid=$(kc -n selftest get "$kind/$name" -o jsonpath='{.metadata.uid}')
	kc -n selftest apply -f - >/dev/null <<-EOF
		apiVersion: v1
		kind: ConfigMap
		metadata:
		  name: $dependent
		  ownerReferences:
		  - {apiVersion: $api_version, kind: $kind, name: $name, uid: $uid}
	EOF
	kc -n selftest delete "$kind/$name" >/dev/null
	kc -n selftest wait --for=delete "configmap/$dependent" --timeout=90s >/dev/null
	log "  dependent of $kind/$name collected $((SECONDS - start))s after the owner was deleted"
}

check_gc() {
	kc -n selftest create configmap owner >/dev/null
	gc_case v1 ConfigMap owner dependent-of-configmap
	# The CRD is younger than the controller manager: the collector learns of it by re-discovery.
	gc_case selftest.tapmon.dev/v1 Widget w1 dependent-of-widget
}

check_watchlist() {
	local out gate
	out=$(kc get --raw '/api/v1/namespaces?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=3')
	gate=$(kc get --raw /metrics | grep -E '^kubernetes_feature_enabled\{name="WatchList",' || true)
	log "  $(grep -c '"type":"ADDED"' <<<"$out") ADDED events then a bookmark; ${gate:-no WatchList gate metric}"
	grep -q '"k8s.io/initial-events-end":"true"' <<<"$out"
}

check_namespace_deletion() {
	local start=$SECONDS
	kc delete namespace selftest --wait=false >/dev/null
	kc wait --for=delete namespace/selftest --timeout=120s >/dev/null
	log "  namespace selftest gone after $((SECONDS - start))s"
}

# Restart by TERM, then by KILL (a crash); each time the data must still be there.
restart_case() {
	local before after start=$SECONDS
	before=$(pid_of "$SELFTEST_STATE" kube-apiserver)
	cmd_apiserver restart "$@" "$SELFTEST_STATE"
	after=$(pid_of "$SELFTEST_STATE" kube-apiserver)
	log "  restart-apiserver${*:+ $*}: PID $before -> $after, ready again after $((SECONDS - start))s"
	[[ $before != "$after" ]]
	check_readyz
	kc get crd widgets.selftest.tapmon.dev >/dev/null
}

check_restart_apiserver() { restart_case; }
check_crash_apiserver() { restart_case --kill; }

# Runs "$@" in a subshell with errexit in force, so that any failing command inside fails it, and
# sets RC. (Called as a condition, as in `if f`, bash would ignore errexit inside f altogether.)
RC=0
run_isolated() {
	set +e
	(
		set -e
		"$@"
	)
	RC=$?
	set -e
}

SELFTEST_STATE=
cmd_selftest() {
	(($# <= 1)) || die "usage: cluster.sh selftest [STATE_DIR]"
	local state=${1:-} passed=0 failed=0 name pids=() pid component
	if [[ -z $state ]]; then
		state=$(mktemp -d "${TMPDIR:-/tmp}/tapmon-selftest.XXXXXX")
	fi
	state=$(state_path "$state")
	SELFTEST_STATE=$state
	run_isolated cmd_up "$state" >&2
	if ((RC != 0)); then
		printf 'selftest: 0 passed, 1 failed (up; logs in %s/logs)\n' "$state"
		return 1
	fi
	load_env "$state"
	for name in readyz version namespace crd_status token_request rbac gc watchlist namespace_deletion restart_apiserver crash_apiserver; do
		run_isolated "check_$name"
		if ((RC == 0)); then
			log "ok $name"
			passed=$((passed + 1))
		else
			log "FAILED $name"
			failed=$((failed + 1))
			break
		fi
	done
	cmd_status "$state" >&2 || true
	for component in "${COMPONENTS[@]}"; do
		pid=$(pid_of "$state" "$component") || continue
		pids+=("$pid")
		log "  $component PID $pid: $(grep VmRSS "/proc/$pid/status" | tr -s ' \t' ' ')"
	done
	cmd_down "$state"
	# A stopped process may stay a zombie for a moment, until its parent (init) reaps it.
	local deadline=$((SECONDS + 10))
	for pid in "${pids[@]}"; do
		while [[ -d /proc/$pid ]] && ((SECONDS < deadline)); do sleep "$POLL"; done
		if [[ -d /proc/$pid ]]; then
			log "FAILED down: PID $pid still exists: $(cut -d' ' -f1-3 "/proc/$pid/stat" 2>/dev/null)"
			failed=$((failed + 1))
		fi
	done
	log "down: none of the PIDs ${pids[*]} exists any more"
	((failed > 0)) || rm -rf "$state"
	printf 'selftest: %d passed, %d failed\n' "$passed" "$failed"
	((failed == 0))
}

main() {
	local verb=${1:-help}
	shift || true
	case $verb in
	build) cmd_build "$@" ;;
	build-ksm) cmd_build_ksm "$@" ;;
	build-prometheus-operator) cmd_build_prometheus_operator "$@" ;;
	build-tools) cmd_build_tools "$@" ;;
	up) cmd_up "$@" ;;
	down) cmd_down "$@" ;;
	stop-apiserver) cmd_apiserver stop "$@" ;;
	start-apiserver) cmd_apiserver start "$@" ;;
	restart-apiserver) cmd_apiserver restart "$@" ;;
	status) cmd_status "$@" ;;
	kubectl) cmd_kubectl "$@" ;;
	selftest) cmd_selftest "$@" ;;
	help | -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" ;;
	*) die "unknown command '$verb' (try: cluster.sh help)" ;;
	esac
}

main "$@"
