# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_canary_global_optspecs
    string join \n h/help V/version
end

function __fish_canary_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_canary_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_canary_using_subcommand
    set -l cmd (__fish_canary_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c canary -n "__fish_canary_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c canary -n "__fish_canary_needs_command" -s V -l version -d 'Print version'
complete -c canary -n "__fish_canary_needs_command" -f -a "run" -d 'Run the analysis of one or more canaries to a verdict'
complete -c canary -n "__fish_canary_needs_command" -f -a "status" -d 'Show the canaries `canary` manages: phase, weight, failed checks and who drives them, read from the cluster'
complete -c canary -n "__fish_canary_needs_command" -f -a "abort" -d 'Stop a rollout: route all traffic to the primary and scale the canary down'
complete -c canary -n "__fish_canary_needs_command" -f -a "promote" -d 'Skip the remaining analysis and promote the canary now'
complete -c canary -n "__fish_canary_needs_command" -f -a "pause" -d 'Hold the rollout: the weight stays where it is and no checks run until `canary resume`'
complete -c canary -n "__fish_canary_needs_command" -f -a "resume" -d 'Continue a paused rollout; the next check is one interval later'
complete -c canary -n "__fish_canary_needs_command" -f -a "revert" -d 'Give the target back and remove everything `canary` made for the canary, as Flagger\'s `revertOnDeletion` does'
complete -c canary -n "__fish_canary_needs_command" -f -a "validate" -d 'Check Canary, MetricTemplate and AlertProvider files offline, and with --cluster against the live cluster too (read only)'
complete -c canary -n "__fish_canary_needs_command" -f -a "plan" -d 'Show what a rollout will do, without touching a cluster'
complete -c canary -n "__fish_canary_needs_command" -f -a "demo" -d 'Run a simulated cluster with podinfo, Linkerd, Prometheus and the load tester, for trying `canary` without a cluster'
complete -c canary -n "__fish_canary_needs_command" -f -a "completions" -d 'Print a shell completion script to standard output'
complete -c canary -n "__fish_canary_using_subcommand run" -l max-input-size -d 'Refuse a spec file larger than this many bytes (suffixes KiB, MiB, GiB, or K, M, G, k)' -r
complete -c canary -n "__fish_canary_using_subcommand run" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)' -r -F
complete -c canary -n "__fish_canary_using_subcommand run" -l context -d 'The kubeconfig context to use' -r
complete -c canary -n "__fish_canary_using_subcommand run" -s n -l namespace -d 'Namespace of canaries whose spec names none (default: the context\'s)' -r
complete -c canary -n "__fish_canary_using_subcommand run" -l request-timeout -d 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]' -r
complete -c canary -n "__fish_canary_using_subcommand run" -l mesh-provider -d 'Service mesh or ingress provider for canaries whose spec names none (Flagger\'s `-mesh-provider`); detected from the cluster when absent' -r
complete -c canary -n "__fish_canary_using_subcommand run" -l metrics-server -d 'Prometheus address for the built-in metrics (overrides the spec\'s `metricsServer`; default: the provider\'s own)' -r
complete -c canary -n "__fish_canary_using_subcommand run" -l wait-for-change -d 'With nothing to analyse, wait this long (e.g. 10m) for the target to change, as when a GitOps tool applies the change later' -r
complete -c canary -n "__fish_canary_using_subcommand run" -l set-image -d 'Set a container\'s image on the target first (repeatable), for pipelines that deploy with `canary` itself' -r
complete -c canary -n "__fish_canary_using_subcommand run" -l api-retry-window -d 'How long to keep trying rounds that fail on the API server\'s 429 and 5xx answers or on broken connections, counted from the last round that got through; `0` stops at the first such error (exit 3)' -r
complete -c canary -n "__fish_canary_using_subcommand run" -l timeout -d 'Give up after this long for the whole run (e.g. 30m)' -r
complete -c canary -n "__fish_canary_using_subcommand run" -l on-timeout -d 'What a timed-out run does to a rollout under way' -r -f -a "rollback\t'Route all traffic to the primary and scale the canary down'
leave\t'Leave it as it is; `canary run` resumes it, `canary abort` ends it'"
complete -c canary -n "__fish_canary_using_subcommand run" -l on-interrupt -d 'What Ctrl-C or SIGTERM does to a rollout under way (a second one exits at once)' -r -f -a "rollback\t'Route all traffic to the primary and scale the canary down'
leave\t'Leave it as it is; `canary run` resumes it, `canary abort` ends it'"
complete -c canary -n "__fish_canary_using_subcommand run" -l route-via -d 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server\'s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)' -r -f -a "proxy\t'Through the API server\'s service proxy, with your credentials'
direct\t'Straight to the URL, as a Pod reaches it (honours HTTP_PROXY)'"
complete -c canary -n "__fish_canary_using_subcommand run" -l proxy-allow -d 'The namespaces (comma-separated) whose Services webhooks and metrics servers may name, besides the canary\'s own; a spec naming a Service elsewhere is refused before anything changes (default: any namespace; the API server\'s own Service is always refused)' -r
complete -c canary -n "__fish_canary_using_subcommand run" -l max-parallel -d 'Drive at most this many canaries at a time (default: all)' -r
complete -c canary -n "__fish_canary_using_subcommand run" -s o -l output -d 'Output: a live view on a terminal and timestamped lines otherwise (`auto`), or one JSON event per line on stdout (`json`)' -r -f -a "auto\t''
json\t''"
complete -c canary -n "__fish_canary_using_subcommand run" -l summary -d 'The summary table after the verdict: healthy steps folded into one row, or every step' -r -f -a "folded\t'Runs of healthy steps folded into one row each'
full\t'Every step on its own row'"
complete -c canary -n "__fish_canary_using_subcommand run" -s R -l recursive -d 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
complete -c canary -n "__fish_canary_using_subcommand run" -l retry -d 'Analyse a revision that already failed, instead of reporting it'
complete -c canary -n "__fish_canary_using_subcommand run" -s q -l quiet -d 'Print errors only (the exit code is the verdict)'
complete -c canary -n "__fish_canary_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c canary -n "__fish_canary_using_subcommand run" -s V -l version -d 'Print version'
complete -c canary -n "__fish_canary_using_subcommand status" -s f -l file -d 'The canaries of this spec file (a directory, or `-` for standard input)' -r -F
complete -c canary -n "__fish_canary_using_subcommand status" -s l -l selector -d 'Only the canaries whose `<target>-primary` Deployment carries these labels (a kubectl label selector, e.g. `team=web,tier!=db`). The primary copies the target\'s labels when it is made, but for the selector label, which reads `<value>-primary` (`app=podinfo-primary`)' -r -f
complete -c canary -n "__fish_canary_using_subcommand status" -l timeout -d 'With --wait: give up after this long (e.g. 15m) and exit 5' -r -f
complete -c canary -n "__fish_canary_using_subcommand status" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)' -r -F
complete -c canary -n "__fish_canary_using_subcommand status" -l context -d 'The kubeconfig context to use' -r
complete -c canary -n "__fish_canary_using_subcommand status" -s n -l namespace -d 'Namespace of canaries whose spec names none (default: the context\'s)' -r
complete -c canary -n "__fish_canary_using_subcommand status" -l request-timeout -d 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]' -r
complete -c canary -n "__fish_canary_using_subcommand status" -s o -l output -d 'Output format: table, wide, json, yaml, name, jsonpath=TEMPLATE or custom-columns=HEADER:PATH,... (as kubectl\'s)' -r -f -a "table\t''
wide\t'The table with target, iterations and revisions'
json\t'A kubectl List of Flagger Canary objects (one object for NAME)'
yaml\t''
name\t'canary.flagger.app/NAME, one a line'
jsonpath=TEMPLATE\t'A kubectl JSONPath template over the json output'
custom-columns=SPEC\t'Columns HEADER:.json.path,... as kubectl\'s'"
complete -c canary -n "__fish_canary_using_subcommand status" -s R -l recursive -d 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
complete -c canary -n "__fish_canary_using_subcommand status" -s w -l watch -d 'Keep watching and print each change as it happens'
complete -c canary -n "__fish_canary_using_subcommand status" -l wait -d 'Follow the rollout, whoever drives it, until its verdict, and exit with the verdict\'s code: 0 promoted (or nothing to analyse), 1 rolled back, 4 aborted, 5 when --timeout ends first'
complete -c canary -n "__fish_canary_using_subcommand status" -l exit-zero -d 'Exit 0 even when a canary shown has failed (without it, `status` exits 1 when any canary shown is Failed)'
complete -c canary -n "__fish_canary_using_subcommand status" -s A -l all-namespaces -d 'List canaries in every namespace'
complete -c canary -n "__fish_canary_using_subcommand status" -l no-headers -d 'Print the table (or custom columns) without its header'
complete -c canary -n "__fish_canary_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c canary -n "__fish_canary_using_subcommand status" -s V -l version -d 'Print version'
complete -c canary -n "__fish_canary_using_subcommand abort" -s f -l file -d 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input' -r -F
complete -c canary -n "__fish_canary_using_subcommand abort" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)' -r -F
complete -c canary -n "__fish_canary_using_subcommand abort" -l context -d 'The kubeconfig context to use' -r
complete -c canary -n "__fish_canary_using_subcommand abort" -s n -l namespace -d 'Namespace of canaries whose spec names none (default: the context\'s)' -r
complete -c canary -n "__fish_canary_using_subcommand abort" -l request-timeout -d 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]' -r
complete -c canary -n "__fish_canary_using_subcommand abort" -l route-via -d 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server\'s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)' -r -f -a "proxy\t'Through the API server\'s service proxy, with your credentials'
direct\t'Straight to the URL, as a Pod reaches it (honours HTTP_PROXY)'"
complete -c canary -n "__fish_canary_using_subcommand abort" -s R -l recursive -d 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
complete -c canary -n "__fish_canary_using_subcommand abort" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c canary -n "__fish_canary_using_subcommand abort" -s V -l version -d 'Print version'
complete -c canary -n "__fish_canary_using_subcommand promote" -s f -l file -d 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input' -r -F
complete -c canary -n "__fish_canary_using_subcommand promote" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)' -r -F
complete -c canary -n "__fish_canary_using_subcommand promote" -l context -d 'The kubeconfig context to use' -r
complete -c canary -n "__fish_canary_using_subcommand promote" -s n -l namespace -d 'Namespace of canaries whose spec names none (default: the context\'s)' -r
complete -c canary -n "__fish_canary_using_subcommand promote" -l request-timeout -d 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]' -r
complete -c canary -n "__fish_canary_using_subcommand promote" -l route-via -d 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server\'s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)' -r -f -a "proxy\t'Through the API server\'s service proxy, with your credentials'
direct\t'Straight to the URL, as a Pod reaches it (honours HTTP_PROXY)'"
complete -c canary -n "__fish_canary_using_subcommand promote" -s R -l recursive -d 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
complete -c canary -n "__fish_canary_using_subcommand promote" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c canary -n "__fish_canary_using_subcommand promote" -s V -l version -d 'Print version'
complete -c canary -n "__fish_canary_using_subcommand pause" -s f -l file -d 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input' -r -F
complete -c canary -n "__fish_canary_using_subcommand pause" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)' -r -F
complete -c canary -n "__fish_canary_using_subcommand pause" -l context -d 'The kubeconfig context to use' -r
complete -c canary -n "__fish_canary_using_subcommand pause" -s n -l namespace -d 'Namespace of canaries whose spec names none (default: the context\'s)' -r
complete -c canary -n "__fish_canary_using_subcommand pause" -l request-timeout -d 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]' -r
complete -c canary -n "__fish_canary_using_subcommand pause" -l route-via -d 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server\'s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)' -r -f -a "proxy\t'Through the API server\'s service proxy, with your credentials'
direct\t'Straight to the URL, as a Pod reaches it (honours HTTP_PROXY)'"
complete -c canary -n "__fish_canary_using_subcommand pause" -s R -l recursive -d 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
complete -c canary -n "__fish_canary_using_subcommand pause" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c canary -n "__fish_canary_using_subcommand pause" -s V -l version -d 'Print version'
complete -c canary -n "__fish_canary_using_subcommand resume" -s f -l file -d 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input' -r -F
complete -c canary -n "__fish_canary_using_subcommand resume" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)' -r -F
complete -c canary -n "__fish_canary_using_subcommand resume" -l context -d 'The kubeconfig context to use' -r
complete -c canary -n "__fish_canary_using_subcommand resume" -s n -l namespace -d 'Namespace of canaries whose spec names none (default: the context\'s)' -r
complete -c canary -n "__fish_canary_using_subcommand resume" -l request-timeout -d 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]' -r
complete -c canary -n "__fish_canary_using_subcommand resume" -l route-via -d 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server\'s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)' -r -f -a "proxy\t'Through the API server\'s service proxy, with your credentials'
direct\t'Straight to the URL, as a Pod reaches it (honours HTTP_PROXY)'"
complete -c canary -n "__fish_canary_using_subcommand resume" -s R -l recursive -d 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
complete -c canary -n "__fish_canary_using_subcommand resume" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c canary -n "__fish_canary_using_subcommand resume" -s V -l version -d 'Print version'
complete -c canary -n "__fish_canary_using_subcommand revert" -s f -l file -d 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input' -r -F
complete -c canary -n "__fish_canary_using_subcommand revert" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)' -r -F
complete -c canary -n "__fish_canary_using_subcommand revert" -l context -d 'The kubeconfig context to use' -r
complete -c canary -n "__fish_canary_using_subcommand revert" -s n -l namespace -d 'Namespace of canaries whose spec names none (default: the context\'s)' -r
complete -c canary -n "__fish_canary_using_subcommand revert" -l request-timeout -d 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]' -r
complete -c canary -n "__fish_canary_using_subcommand revert" -l route-via -d 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server\'s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)' -r -f -a "proxy\t'Through the API server\'s service proxy, with your credentials'
direct\t'Straight to the URL, as a Pod reaches it (honours HTTP_PROXY)'"
complete -c canary -n "__fish_canary_using_subcommand revert" -s R -l recursive -d 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
complete -c canary -n "__fish_canary_using_subcommand revert" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c canary -n "__fish_canary_using_subcommand revert" -s V -l version -d 'Print version'
complete -c canary -n "__fish_canary_using_subcommand validate" -l max-input-size -d 'Refuse a spec file larger than this many bytes (suffixes KiB, MiB, GiB, or K, M, G, k)' -r
complete -c canary -n "__fish_canary_using_subcommand validate" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and lines for people'
json\t'One JSON document for machines'"
complete -c canary -n "__fish_canary_using_subcommand validate" -l kubeconfig -d 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)' -r -F
complete -c canary -n "__fish_canary_using_subcommand validate" -l context -d 'The kubeconfig context to use' -r
complete -c canary -n "__fish_canary_using_subcommand validate" -s n -l namespace -d 'Namespace of canaries whose spec names none (default: the context\'s)' -r
complete -c canary -n "__fish_canary_using_subcommand validate" -l request-timeout -d 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]' -r
complete -c canary -n "__fish_canary_using_subcommand validate" -l mesh-provider -d 'With --cluster: the provider of canaries whose spec names none (detected from the cluster when absent)' -r
complete -c canary -n "__fish_canary_using_subcommand validate" -l metrics-server -d 'With --cluster: the Prometheus of the built-in metrics, as for `canary run`' -r
complete -c canary -n "__fish_canary_using_subcommand validate" -l route-via -d 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server\'s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)' -r -f -a "proxy\t'Through the API server\'s service proxy, with your credentials'
direct\t'Straight to the URL, as a Pod reaches it (honours HTTP_PROXY)'"
complete -c canary -n "__fish_canary_using_subcommand validate" -s R -l recursive -d 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
complete -c canary -n "__fish_canary_using_subcommand validate" -l cluster -d 'Also check each canary against the live cluster, reading only: the target and its autoscaler exist, its pods serve the Service\'s port, MetricTemplates and AlertProviders exist with their Secrets and keys, in-cluster webhooks\' Services exist with their ports, and every permission `canary run` needs is granted. The same checks `canary run` makes before it changes anything'
complete -c canary -n "__fish_canary_using_subcommand validate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c canary -n "__fish_canary_using_subcommand validate" -s V -l version -d 'Print version'
complete -c canary -n "__fish_canary_using_subcommand plan" -l name -d 'Which Canary of the file, when it holds several' -r
complete -c canary -n "__fish_canary_using_subcommand plan" -l max-input-size -d 'Refuse a spec file larger than this many bytes (suffixes KiB, MiB, GiB, or K, M, G, k)' -r
complete -c canary -n "__fish_canary_using_subcommand plan" -l mesh-provider -d 'Service mesh or ingress provider for canaries whose spec names none (Flagger\'s `-mesh-provider` install flag), e.g. linkerd, istio, nginx' -r
complete -c canary -n "__fish_canary_using_subcommand plan" -l metrics-server -d 'Prometheus address used by the built-in metrics, when the spec sets no `metricsServer` (default: the provider\'s own)' -r
complete -c canary -n "__fish_canary_using_subcommand plan" -s o -l output -d 'Output format' -r -f -a "table\t'Tables and lines for people'
json\t'One JSON document for machines'"
complete -c canary -n "__fish_canary_using_subcommand plan" -s R -l recursive -d 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
complete -c canary -n "__fish_canary_using_subcommand plan" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c canary -n "__fish_canary_using_subcommand plan" -s V -l version -d 'Print version'
complete -c canary -n "__fish_canary_using_subcommand demo" -l kubeconfig -d 'Where to write the kubeconfig (with --serve)' -r -F
complete -c canary -n "__fish_canary_using_subcommand demo" -l scenario -d 'A scenario file to run instead of the built-in one (with --serve)' -r -F
complete -c canary -n "__fish_canary_using_subcommand demo" -l serve -d 'Keep the simulated cluster running until Ctrl-C and write a kubeconfig for other terminals, instead of playing the story'
complete -c canary -n "__fish_canary_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c canary -n "__fish_canary_using_subcommand demo" -s V -l version -d 'Print version'
complete -c canary -n "__fish_canary_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c canary -n "__fish_canary_using_subcommand completions" -s V -l version -d 'Print version'
