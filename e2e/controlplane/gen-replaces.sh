#!/usr/bin/env bash
# Pin this module to one Kubernetes release: require k8s.io/kubernetes vX.Y.Z and replace each staging
# module it uses (k8s.io/api, k8s.io/apiserver, ...) with v0.Y.Z, then tidy.
#
# k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging/src paths,
# which mean nothing outside its own tree; a module that imports it must say which published version
# each staging module is. The list is read from that release's go.mod, not typed by hand.
#
# Usage: e2e/controlplane/gen-replaces.sh v1.35.5
# Afterwards it checks that every module both graphs contain is selected at the version Kubernetes
# itself selects (set ALLOW_DRIFT=1 to only warn), so the binary is built from the same dependencies
# as the release.
set -euo pipefail

die() { printf 'gen-replaces: %s\n' "$*" >&2; exit 1; }

version=${1:-}
[[ $version =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "usage: gen-replaces.sh v1.MINOR.PATCH (got '${version}')"
staging_version="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"

cd "$(dirname "${BASH_SOURCE[0]}")"
[[ -f go.mod ]] || die "no go.mod in $(pwd)"

# go.mod and go.sum are put back as they were when this fails. Queries about published versions
# run outside this module: inside it, go would answer for the replacements already in go.mod.
scratch=$(mktemp -d)
mkdir "$scratch/backup" "$scratch/empty"
cp go.mod "$scratch/backup/"
[[ ! -f go.sum ]] || cp go.sum "$scratch/backup/"
finish() {
	local rc=$?
	if ((rc != 0)); then
		rm -f go.sum
		cp "$scratch/backup/"go.* .
		printf 'gen-replaces: go.mod and go.sum left unchanged\n' >&2
	fi
	rm -rf "$scratch"
	return "$rc"
}
trap finish EXIT
outside() { (cd "$scratch/empty" && GOWORK=off GOFLAGS=-mod=mod "$@"); }

# The release's go.mod, from the module cache (downloaded and checksum-verified by go).
kube_gomod=$(outside go mod download -json "k8s.io/kubernetes@${version}" |
	sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[[ -f $kube_gomod ]] || die "go mod download gave no go.mod for k8s.io/kubernetes@${version}"

# Staging modules: replaced with ./staging/src/<path> and required at exactly v0.0.0.
mapfile -t staging < <(
	awk '
		/^require[[:space:]]*\(/ { block = "require"; next }
		/^replace[[:space:]]*\(/ { block = "replace"; next }
		/^\)/ { block = ""; next }
		block == "require" && $2 == "v0.0.0" { required[$1] = 1 }
		block == "replace" && $2 == "=>" && $3 == "./staging/src/" $1 { replaced[$1] = 1 }
		END { for (m in replaced) if (m in required) print m }
	' "$kube_gomod" | LC_ALL=C sort
)
((${#staging[@]} > 0)) || die "found no staging modules in ${kube_gomod}"

# Each staging module at the matching version. A module the proxy lacks at that version may only
# stand in at an older patch of the same minor when no package of it is built (k8s.io/kubernetes
# requires the sample-* modules, so go must read some go.mod for them; nothing imports them). That
# is checked after tidy.
# "On the proxy" means go can download it and verify it against the checksum database.
fetchable() {
	local out
	out=$(outside go mod download -json "$1" 2>/dev/null) || return 1
	! grep -q '"Error"' <<<"$out"
}
declare -A use=()
fallback=()
for m in "${staging[@]}"; do
	if fetchable "${m}@${staging_version}"; then
		use[$m]=$staging_version
		continue
	fi
	older=$(outside go list -m -f '{{.Version}}' "${m}@<=${staging_version}" 2>/dev/null || true)
	if [[ $older != "${staging_version%.*}".* ]] || ! fetchable "${m}@${older}"; then
		die "${m}@${staging_version} is not on the module proxy ($(go env GOPROXY)), nor an older ${staging_version%.*}.x"
	fi
	printf 'gen-replaces: %s@%s is not on the module proxy; using %s if no package of it is built\n' \
		"$m" "$staging_version" "$older" >&2
	use[$m]=$older
	fallback+=("$m")
done

# Drop every k8s.io replace we wrote before, then write the new set. The staging modules' require
# lines are dropped too, so that tidy writes them afresh from the new graph.
mapfile -t old < <(go mod edit -json |
	awk '/"Old": \{/ { getline; if ($0 ~ /"Path": "k8s\.io\//) { sub(/.*"Path": "/, ""); sub(/".*/, ""); print } }')
edits=()
for m in "${old[@]}"; do edits+=("-dropreplace=${m}"); done
for m in "${staging[@]}"; do edits+=("-droprequire=${m}" "-replace=${m}=${m}@${use[$m]}"); done
go mod edit "${edits[@]}" "-require=k8s.io/kubernetes@${version}"
go mod tidy

for m in "${fallback[@]}"; do
	built=$(go list -deps . | grep -E "^${m//./\\.}(/|\$)" || true)
	[[ -z $built ]] || die "${m} is built (${built%%$'\n'*}) but not on the module proxy at ${staging_version}"
done

# Compare the selected versions with the release's own go.mod.
drift=$(
	awk '
		FNR == NR { if ($1 != "" && $2 != "") selected[$1] = $2; next }
		/^require[[:space:]]*\(/ { block = 1; next }
		/^\)/ { block = 0; next }
		block && $2 != "v0.0.0" && ($1 in selected) && selected[$1] != $2 {
			printf "  %s: kubernetes %s, here %s\n", $1, $2, selected[$1]
		}
	' <(go list -m -f '{{.Path}} {{.Version}}' all) "$kube_gomod"
)
if [[ -n $drift ]]; then
	printf 'gen-replaces: modules selected at other versions than k8s.io/kubernetes@%s selects:\n%s\n' \
		"$version" "$drift" >&2
	[[ ${ALLOW_DRIFT:-0} == 1 ]] || die "pin them in go.mod (go mod edit -require=PATH@VERSION) or set ALLOW_DRIFT=1"
fi
printf 'gen-replaces: k8s.io/kubernetes %s, %d staging modules at %s\n' "$version" "${#staging[@]}" "$staging_version" >&2
