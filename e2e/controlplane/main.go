// Command tapmon-controlplane is a Kubernetes control plane for tapmon's end-to-end tests: several
// upstream programs in one binary, selected by the first argument, each run as its own process by
// e2e/cluster.sh.
//
//	tapmon-controlplane etcd --data-dir DIR --listen-client-url http://127.0.0.1:PORT
//	tapmon-controlplane kube-apiserver ARGS...           (upstream kube-apiserver)
//	tapmon-controlplane kube-controller-manager ARGS...  (upstream kube-controller-manager)
//	tapmon-controlplane kubectl ARGS...                  (upstream kubectl)
//	tapmon-controlplane free-ports N                     (N free loopback TCP ports, one a line)
//	tapmon-controlplane version                          (the Kubernetes version built in)
//
// Each component's main is the upstream one: os.Args is rewritten so that the component sees itself
// as argv[0] and the remaining arguments as its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
	_ "time/tzdata" // as upstream: time zones for CronJob validation

	"go.etcd.io/etcd/server/v3/embed"

	_ "k8s.io/client-go/plugin/pkg/client/auth" // as upstream kubectl: client auth plugins
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"          // as upstream: --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // as upstream: client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // as upstream: build info metric
	"k8s.io/component-base/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

const usage = `usage: tapmon-controlplane COMMAND [ARGS...]

commands:
  etcd                     embedded etcd on a loopback URL (--help for flags)
  kube-apiserver           upstream kube-apiserver
  kube-controller-manager  upstream kube-controller-manager
  kubectl                  upstream kubectl
  free-ports N             print N free loopback TCP ports, one a line
  version                  print the Kubernetes version built in
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	command := os.Args[1]
	os.Args = append([]string{command}, os.Args[2:]...)

	switch command {
	case "etcd":
		os.Exit(runEtcd(os.Args[1:]))
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kubectl":
		runKubectl()
	case "free-ports":
		os.Exit(runFreePorts(os.Args[1:]))
	case "version":
		fmt.Println(version.Get().GitVersion)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "tapmon-controlplane: unknown command %q\n\n%s", command, usage)
		os.Exit(2)
	}
}

// runKubectl is upstream cmd/kubectl/kubectl.go.
func runKubectl() {
	logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args)) //nolint:errcheck // as upstream
	command := kubectlcmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		kubectlutil.CheckErr(err)
	}
}

// runEtcd runs a single-member etcd until SIGINT or SIGTERM. The peer listener takes a
// kernel-chosen loopback port and the advertised peer URL stays the default: no other member
// ever connects (as Kubernetes' own integration tests run etcd).
func runEtcd(args []string) int {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "data directory (required)")
	clientURL := fs.String("listen-client-url", "http://127.0.0.1:2379", "client URL; must be http on a loopback address")
	noFsync := fs.Bool("unsafe-no-fsync", true, "skip fsync: fast, loses data on a machine crash")
	quota := fs.Int64("quota-backend-bytes", 2<<30, "backend size quota in bytes")
	progress := fs.Duration("watch-progress-notify-interval", 5*time.Second, "watch progress notifications (kubeadm sets 5s)")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	readyTimeout := fs.Duration("ready-timeout", time.Minute, "give up when the server is not ready by then")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *dataDir == "" || fs.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "etcd: --data-dir is required and no positional arguments are taken")
		return 2
	}
	client, err := loopbackHTTPURL(*clientURL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd: --listen-client-url: %v\n", err)
		return 2
	}

	cfg := embed.NewConfig()
	cfg.Name = "tapmon-e2e"
	cfg.Dir = *dataDir
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{{Scheme: "http", Host: "127.0.0.1:0"}}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.UnsafeNoFsync = *noFsync
	cfg.QuotaBackendBytes = *quota
	cfg.WatchProgressNotifyInterval = *progress
	cfg.LogLevel = *logLevel
	// etcd's own main sets this default; left at zero, every request is logged as slow.
	cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	cfg.LogOutputs = []string{"stderr"}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd: failed to start: %v\n", err)
		return 1
	}
	defer e.Close()

	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintf(os.Stderr, "etcd: ready, serving clients on %s\n", client)
	case err := <-e.Err():
		fmt.Fprintf(os.Stderr, "etcd: failed before ready: %v\n", err)
		return 1
	case <-time.After(*readyTimeout):
		fmt.Fprintf(os.Stderr, "etcd: not ready after %s\n", *readyTimeout)
		return 1
	case <-ctx.Done():
		return 0
	}

	select {
	case err := <-e.Err():
		fmt.Fprintf(os.Stderr, "etcd: failed: %v\n", err)
		return 1
	case <-e.Server.StopNotify():
		fmt.Fprintln(os.Stderr, "etcd: server stopped")
		return 1
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "etcd: signal received, stopping")
		return 0
	}
}

func loopbackHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" || u.Port() == "" || u.Path != "" {
		return nil, fmt.Errorf("%q: want http://HOST:PORT", raw)
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%q: host must be a loopback IP address", raw)
	}
	return u, nil
}

// runFreePorts holds N listeners on 127.0.0.1:0 at once, so the ports are distinct, then prints
// them. Another process may take one before the caller binds it; on a test machine that is rare.
func runFreePorts(args []string) int {
	n := 1
	if len(args) > 1 {
		fmt.Fprintln(os.Stderr, "free-ports: usage: free-ports [N]")
		return 2
	}
	if len(args) == 1 {
		var err error
		if n, err = strconv.Atoi(args[0]); err != nil || n < 1 || n > 64 {
			fmt.Fprintf(os.Stderr, "free-ports: %q is not a count from 1 to 64\n", args[0])
			return 2
		}
	}
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintf(os.Stderr, "free-ports: %v\n", err)
			return 1
		}
		listeners = append(listeners, l)
	}
	for _, l := range listeners {
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return 0
}
