#!/usr/bin/env bash
# A canary analysis done by hand with kubectl and curl, step for step what
# `canary run` does for an SMI (Linkerd) canary: move the TrafficSplit's
# weights, ask Prometheus for the success rate and the p99 latency through
# the API server's service proxy, call the rollout webhook, wait an
# interval. It is the baseline the benchmark (`cargo bench --bench
# seed_run`) compares the driver's CPU time and memory with; it makes no
# decision beyond stopping when a query fails.
#
#   scripts/kubectl-curl-canary.sh NAMESPACE NAME [STEP_WEIGHT MAX_WEIGHT INTERVAL_SECONDS]
#
# The cluster is the current context of $KUBECONFIG. The metrics server
# and the load tester are Services named by $PROMETHEUS and $LOADTESTER as
# NAMESPACE/NAME:PORT (default linkerd-viz/prometheus:9090 and
# NAMESPACE/flagger-loadtester:80).
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 NAMESPACE NAME [STEP_WEIGHT MAX_WEIGHT INTERVAL_SECONDS]" >&2
    exit 2
fi
ns=$1
name=$2
step=${3:-5}
max=${4:-100}
interval=${5:-1}
prometheus=${PROMETHEUS:-linkerd-viz/prometheus:9090}
loadtester=${LOADTESTER:-$ns/flagger-loadtester:80}

proxy_path() { # NAMESPACE/NAME:PORT -> the service proxy's path
    local ns_name=${1%%:*} port=${1##*:}
    echo "/api/v1/namespaces/${ns_name%%/*}/services/${ns_name##*/}:${port}/proxy"
}

urlencode() {
    local s=$1 out='' c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case "$c" in
        [a-zA-Z0-9._~-]) out+=$c ;;
        *) out+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    echo "$out"
}

# curl reaches the load tester through the API server with the
# kubeconfig's server, CA and token; the token goes to curl in a file, not
# on its command line.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
server=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' |
    base64 -d >"$work/ca.crt"
umask 077
printf 'header = "Authorization: Bearer %s"\n' \
    "$(kubectl config view --raw --minify -o jsonpath='{.users[0].user.token}')" >"$work/curlrc"

query() { # PROMQL -> the answer's value, or exit 1
    local answer
    answer=$(kubectl get --raw "$(proxy_path "$prometheus")/api/v1/query?query=$(urlencode "$1")")
    case "$answer" in
    *'"status":"success"'*) ;;
    *)
        echo "query failed: $answer" >&2
        exit 1
        ;;
    esac
}

selector="namespace=\"$ns\", deployment=\"$name\", direction=\"inbound\""
success="sum(rate(response_total{$selector, classification!=\"failure\"}[1m])) / sum(rate(response_total{$selector}[1m])) * 100"
latency="histogram_quantile(0.99, sum by (le) (rate(response_latency_ms_bucket{$selector}[1m])))"
hook="{\"name\":\"$name\",\"namespace\":\"$ns\",\"phase\":\"Progressing\",\"metadata\":{\"cmd\":\"hey -z 2m -q 10 -c 2 http://$name-canary.$ns:9898/\"}}"

for ((weight = step; weight <= max; weight += step)); do
    kubectl -n "$ns" patch trafficsplit "$name" --type=merge -p \
        "{\"spec\":{\"backends\":[{\"service\":\"$name-primary\",\"weight\":$((100 - weight))},{\"service\":\"$name-canary\",\"weight\":$weight}]}}" \
        >/dev/null
    sleep "$interval"
    query "$success"
    query "$latency"
    curl -sS --fail --config "$work/curlrc" --cacert "$work/ca.crt" \
        -H 'Content-Type: application/json' -d "$hook" \
        "$server$(proxy_path "$loadtester")/" >/dev/null
done
kubectl -n "$ns" patch trafficsplit "$name" --type=merge -p \
    "{\"spec\":{\"backends\":[{\"service\":\"$name-primary\",\"weight\":100},{\"service\":\"$name-canary\",\"weight\":0}]}}" \
    >/dev/null
