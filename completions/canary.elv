
use builtin;
use str;

set edit:completion:arg-completer[canary] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'canary'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'canary'= {
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand run 'Run the analysis of one or more canaries to a verdict'
            cand status 'Show the canaries `canary` manages: phase, weight, failed checks and who drives them, read from the cluster'
            cand abort 'Stop a rollout: route all traffic to the primary and scale the canary down'
            cand promote 'Skip the remaining analysis and promote the canary now'
            cand pause 'Hold the rollout: the weight stays where it is and no checks run until `canary resume`'
            cand resume 'Continue a paused rollout; the next check is one interval later'
            cand revert 'Give the target back and remove everything `canary` made for the canary, as Flagger''s `revertOnDeletion` does'
            cand validate 'Check Canary, MetricTemplate and AlertProvider files offline'
            cand plan 'Show what a rollout will do, without touching a cluster'
            cand demo 'Run a simulated cluster with podinfo, Linkerd, Prometheus and the load tester, for trying `canary` without a cluster'
            cand completions 'Print a shell completion script to standard output'
        }
        &'canary;run'= {
            cand --max-input-size 'Refuse a spec file larger than this many bytes (suffixes KiB, MiB, GiB, or K, M, G, k)'
            cand --kubeconfig 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)'
            cand --context 'The kubeconfig context to use'
            cand -n 'Namespace of canaries whose spec names none (default: the context''s)'
            cand --namespace 'Namespace of canaries whose spec names none (default: the context''s)'
            cand --request-timeout 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]'
            cand --mesh-provider 'Service mesh or ingress provider for canaries whose spec names none (Flagger''s `-mesh-provider`); detected from the cluster when absent'
            cand --metrics-server 'Prometheus address for the built-in metrics (overrides the spec''s `metricsServer`; default: the provider''s own)'
            cand --wait-for-change 'With nothing to analyse, wait this long (e.g. 10m) for the target to change, as when a GitOps tool applies the change later'
            cand --set-image 'Set a container''s image on the target first (repeatable), for pipelines that deploy with `canary` itself'
            cand --timeout 'Give up after this long for the whole run (e.g. 30m)'
            cand --on-timeout 'What a timed-out run does to a rollout under way'
            cand --on-interrupt 'What Ctrl-C or SIGTERM does to a rollout under way (a second one exits at once)'
            cand --route-via 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server''s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)'
            cand --proxy-allow 'The namespaces (comma-separated) whose Services webhooks and metrics servers may name, besides the canary''s own; a spec naming a Service elsewhere is refused before anything changes (default: any namespace; the API server''s own Service is always refused)'
            cand --max-parallel 'Drive at most this many canaries at a time (default: all)'
            cand -o 'Output: a live view on a terminal and timestamped lines otherwise (`auto`), or one JSON event per line on stdout (`json`)'
            cand --output 'Output: a live view on a terminal and timestamped lines otherwise (`auto`), or one JSON event per line on stdout (`json`)'
            cand --summary 'The summary table after the verdict: healthy steps folded into one row, or every step'
            cand -R 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand --recursive 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand --retry 'Analyse a revision that already failed, instead of reporting it'
            cand -q 'Print errors only (the exit code is the verdict)'
            cand --quiet 'Print errors only (the exit code is the verdict)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'canary;status'= {
            cand -f 'The canaries of this spec file (a directory, or `-` for standard input)'
            cand --file 'The canaries of this spec file (a directory, or `-` for standard input)'
            cand -l 'Only the canaries whose `<target>-primary` Deployment carries these labels (a kubectl label selector, e.g. `team=web,tier!=db`). The primary copies the target''s labels when it is made, but for the selector label, which reads `<value>-primary` (`app=podinfo-primary`)'
            cand --selector 'Only the canaries whose `<target>-primary` Deployment carries these labels (a kubectl label selector, e.g. `team=web,tier!=db`). The primary copies the target''s labels when it is made, but for the selector label, which reads `<value>-primary` (`app=podinfo-primary`)'
            cand --timeout 'With --wait: give up after this long (e.g. 15m) and exit 5'
            cand --kubeconfig 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)'
            cand --context 'The kubeconfig context to use'
            cand -n 'Namespace of canaries whose spec names none (default: the context''s)'
            cand --namespace 'Namespace of canaries whose spec names none (default: the context''s)'
            cand --request-timeout 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]'
            cand -o 'Output format: table, wide, json, yaml, name, jsonpath=TEMPLATE or custom-columns=HEADER:PATH,... (as kubectl''s)'
            cand --output 'Output format: table, wide, json, yaml, name, jsonpath=TEMPLATE or custom-columns=HEADER:PATH,... (as kubectl''s)'
            cand -R 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand --recursive 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand -w 'Keep watching and print each change as it happens'
            cand --watch 'Keep watching and print each change as it happens'
            cand --wait 'Follow the rollout, whoever drives it, until its verdict, and exit with the verdict''s code: 0 promoted (or nothing to analyse), 1 rolled back, 4 aborted, 5 when --timeout ends first'
            cand --exit-zero 'Exit 0 even when a canary shown has failed (without it, `status` exits 1 when any canary shown is Failed)'
            cand -A 'List canaries in every namespace'
            cand --all-namespaces 'List canaries in every namespace'
            cand --no-headers 'Print the table (or custom columns) without its header'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'canary;abort'= {
            cand -f 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input'
            cand --file 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input'
            cand --kubeconfig 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)'
            cand --context 'The kubeconfig context to use'
            cand -n 'Namespace of canaries whose spec names none (default: the context''s)'
            cand --namespace 'Namespace of canaries whose spec names none (default: the context''s)'
            cand --request-timeout 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]'
            cand --route-via 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server''s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)'
            cand -R 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand --recursive 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'canary;promote'= {
            cand -f 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input'
            cand --file 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input'
            cand --kubeconfig 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)'
            cand --context 'The kubeconfig context to use'
            cand -n 'Namespace of canaries whose spec names none (default: the context''s)'
            cand --namespace 'Namespace of canaries whose spec names none (default: the context''s)'
            cand --request-timeout 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]'
            cand --route-via 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server''s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)'
            cand -R 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand --recursive 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'canary;pause'= {
            cand -f 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input'
            cand --file 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input'
            cand --kubeconfig 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)'
            cand --context 'The kubeconfig context to use'
            cand -n 'Namespace of canaries whose spec names none (default: the context''s)'
            cand --namespace 'Namespace of canaries whose spec names none (default: the context''s)'
            cand --request-timeout 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]'
            cand --route-via 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server''s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)'
            cand -R 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand --recursive 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'canary;resume'= {
            cand -f 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input'
            cand --file 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input'
            cand --kubeconfig 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)'
            cand --context 'The kubeconfig context to use'
            cand -n 'Namespace of canaries whose spec names none (default: the context''s)'
            cand --namespace 'Namespace of canaries whose spec names none (default: the context''s)'
            cand --request-timeout 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]'
            cand --route-via 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server''s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)'
            cand -R 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand --recursive 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'canary;revert'= {
            cand -f 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input'
            cand --file 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input'
            cand --kubeconfig 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)'
            cand --context 'The kubeconfig context to use'
            cand -n 'Namespace of canaries whose spec names none (default: the context''s)'
            cand --namespace 'Namespace of canaries whose spec names none (default: the context''s)'
            cand --request-timeout 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]'
            cand --route-via 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server''s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)'
            cand -R 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand --recursive 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'canary;validate'= {
            cand --max-input-size 'Refuse a spec file larger than this many bytes (suffixes KiB, MiB, GiB, or K, M, G, k)'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -R 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand --recursive 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'canary;plan'= {
            cand --name 'Which Canary of the file, when it holds several'
            cand --max-input-size 'Refuse a spec file larger than this many bytes (suffixes KiB, MiB, GiB, or K, M, G, k)'
            cand --mesh-provider 'Service mesh or ingress provider for canaries whose spec names none (Flagger''s `-mesh-provider` install flag), e.g. linkerd, istio, nginx'
            cand --metrics-server 'Prometheus address used by the built-in metrics, when the spec sets no `metricsServer` (default: the provider''s own)'
            cand -o 'Output format'
            cand --output 'Output format'
            cand -R 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand --recursive 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'canary;demo'= {
            cand --kubeconfig 'Where to write the kubeconfig (with --serve)'
            cand --scenario 'A scenario file to run instead of the built-in one (with --serve)'
            cand --serve 'Keep the simulated cluster running until Ctrl-C and write a kubeconfig for other terminals, instead of playing the story'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'canary;completions'= {
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
    ]
    $completions[$command]
}
