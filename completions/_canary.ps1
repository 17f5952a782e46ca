
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'canary' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'canary'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'canary' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run the analysis of one or more canaries to a verdict')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show the canaries `canary` manages: phase, weight, failed checks and who drives them, read from the cluster')
            [CompletionResult]::new('abort', 'abort', [CompletionResultType]::ParameterValue, 'Stop a rollout: route all traffic to the primary and scale the canary down')
            [CompletionResult]::new('promote', 'promote', [CompletionResultType]::ParameterValue, 'Skip the remaining analysis and promote the canary now')
            [CompletionResult]::new('pause', 'pause', [CompletionResultType]::ParameterValue, 'Hold the rollout: the weight stays where it is and no checks run until `canary resume`')
            [CompletionResult]::new('resume', 'resume', [CompletionResultType]::ParameterValue, 'Continue a paused rollout; the next check is one interval later')
            [CompletionResult]::new('revert', 'revert', [CompletionResultType]::ParameterValue, 'Give the target back and remove everything `canary` made for the canary, as Flagger''s `revertOnDeletion` does')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check Canary, MetricTemplate and AlertProvider files offline, and with --cluster against the live cluster too (read only)')
            [CompletionResult]::new('plan', 'plan', [CompletionResultType]::ParameterValue, 'Show what a rollout will do, without touching a cluster')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Run a simulated cluster with podinfo, Linkerd, Prometheus and the load tester, for trying `canary` without a cluster')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to standard output')
            break
        }
        'canary;run' {
            [CompletionResult]::new('--max-input-size', '--max-input-size', [CompletionResultType]::ParameterName, 'Refuse a spec file larger than this many bytes (suffixes KiB, MiB, GiB, or K, M, G, k)')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]')
            [CompletionResult]::new('--mesh-provider', '--mesh-provider', [CompletionResultType]::ParameterName, 'Service mesh or ingress provider for canaries whose spec names none (Flagger''s `-mesh-provider`); detected from the cluster when absent')
            [CompletionResult]::new('--metrics-server', '--metrics-server', [CompletionResultType]::ParameterName, 'Prometheus address for the built-in metrics (overrides the spec''s `metricsServer`; default: the provider''s own)')
            [CompletionResult]::new('--wait-for-change', '--wait-for-change', [CompletionResultType]::ParameterName, 'With nothing to analyse, wait this long (e.g. 10m) for the target to change, as when a GitOps tool applies the change later')
            [CompletionResult]::new('--set-image', '--set-image', [CompletionResultType]::ParameterName, 'Set a container''s image on the target first (repeatable), for pipelines that deploy with `canary` itself')
            [CompletionResult]::new('--api-retry-window', '--api-retry-window', [CompletionResultType]::ParameterName, 'How long to keep trying rounds that fail on the API server''s 429 and 5xx answers or on broken connections, counted from the last round that got through; `0` stops at the first such error (exit 3)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Give up after this long for the whole run (e.g. 30m)')
            [CompletionResult]::new('--on-timeout', '--on-timeout', [CompletionResultType]::ParameterName, 'What a timed-out run does to a rollout under way')
            [CompletionResult]::new('--on-interrupt', '--on-interrupt', [CompletionResultType]::ParameterName, 'What Ctrl-C or SIGTERM does to a rollout under way (a second one exits at once)')
            [CompletionResult]::new('--route-via', '--route-via', [CompletionResultType]::ParameterName, 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server''s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)')
            [CompletionResult]::new('--proxy-allow', '--proxy-allow', [CompletionResultType]::ParameterName, 'The namespaces (comma-separated) whose Services webhooks and metrics servers may name, besides the canary''s own; a spec naming a Service elsewhere is refused before anything changes (default: any namespace; the API server''s own Service is always refused)')
            [CompletionResult]::new('--max-parallel', '--max-parallel', [CompletionResultType]::ParameterName, 'Drive at most this many canaries at a time (default: all)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output: a live view on a terminal and timestamped lines otherwise (`auto`), or one JSON event per line on stdout (`json`)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output: a live view on a terminal and timestamped lines otherwise (`auto`), or one JSON event per line on stdout (`json`)')
            [CompletionResult]::new('--summary', '--summary', [CompletionResultType]::ParameterName, 'The summary table after the verdict: healthy steps folded into one row, or every step')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('--retry', '--retry', [CompletionResultType]::ParameterName, 'Analyse a revision that already failed, instead of reporting it')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print errors only (the exit code is the verdict)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print errors only (the exit code is the verdict)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'canary;status' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'The canaries of this spec file (a directory, or `-` for standard input)')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'The canaries of this spec file (a directory, or `-` for standard input)')
            [CompletionResult]::new('-l', '-l', [CompletionResultType]::ParameterName, 'Only the canaries whose `<target>-primary` Deployment carries these labels (a kubectl label selector, e.g. `team=web,tier!=db`). The primary copies the target''s labels when it is made, but for the selector label, which reads `<value>-primary` (`app=podinfo-primary`)')
            [CompletionResult]::new('--selector', '--selector', [CompletionResultType]::ParameterName, 'Only the canaries whose `<target>-primary` Deployment carries these labels (a kubectl label selector, e.g. `team=web,tier!=db`). The primary copies the target''s labels when it is made, but for the selector label, which reads `<value>-primary` (`app=podinfo-primary`)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'With --wait: give up after this long (e.g. 15m) and exit 5')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format: table, wide, json, yaml, name, jsonpath=TEMPLATE or custom-columns=HEADER:PATH,... (as kubectl''s)')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format: table, wide, json, yaml, name, jsonpath=TEMPLATE or custom-columns=HEADER:PATH,... (as kubectl''s)')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('-w', '-w', [CompletionResultType]::ParameterName, 'Keep watching and print each change as it happens')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Keep watching and print each change as it happens')
            [CompletionResult]::new('--wait', '--wait', [CompletionResultType]::ParameterName, 'Follow the rollout, whoever drives it, until its verdict, and exit with the verdict''s code: 0 promoted (or nothing to analyse), 1 rolled back, 4 aborted, 5 when --timeout ends first')
            [CompletionResult]::new('--exit-zero', '--exit-zero', [CompletionResultType]::ParameterName, 'Exit 0 even when a canary shown has failed (without it, `status` exits 1 when any canary shown is Failed)')
            [CompletionResult]::new('-A', '-A ', [CompletionResultType]::ParameterName, 'List canaries in every namespace')
            [CompletionResult]::new('--all-namespaces', '--all-namespaces', [CompletionResultType]::ParameterName, 'List canaries in every namespace')
            [CompletionResult]::new('--no-headers', '--no-headers', [CompletionResultType]::ParameterName, 'Print the table (or custom columns) without its header')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'canary;abort' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]')
            [CompletionResult]::new('--route-via', '--route-via', [CompletionResultType]::ParameterName, 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server''s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'canary;promote' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]')
            [CompletionResult]::new('--route-via', '--route-via', [CompletionResultType]::ParameterName, 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server''s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'canary;pause' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]')
            [CompletionResult]::new('--route-via', '--route-via', [CompletionResultType]::ParameterName, 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server''s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'canary;resume' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]')
            [CompletionResult]::new('--route-via', '--route-via', [CompletionResultType]::ParameterName, 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server''s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'canary;revert' {
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input')
            [CompletionResult]::new('--file', '--file', [CompletionResultType]::ParameterName, 'Take the canary from this spec file instead (and its spec, when no driver is running); a directory, or `-` for standard input')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]')
            [CompletionResult]::new('--route-via', '--route-via', [CompletionResultType]::ParameterName, 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server''s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'canary;validate' {
            [CompletionResult]::new('--max-input-size', '--max-input-size', [CompletionResultType]::ParameterName, 'Refuse a spec file larger than this many bytes (suffixes KiB, MiB, GiB, or K, M, G, k)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then, inside a Pod, its service account)')
            [CompletionResult]::new('--context', '--context', [CompletionResultType]::ParameterName, 'The kubeconfig context to use')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--namespace', '--namespace', [CompletionResultType]::ParameterName, 'Namespace of canaries whose spec names none (default: the context''s)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'How long to wait for the API server to answer when connecting (`30s`, `1m`; a bare number is seconds; `0` waits without limit). An unreachable server is reported within it [default: 30s]')
            [CompletionResult]::new('--mesh-provider', '--mesh-provider', [CompletionResultType]::ParameterName, 'With --cluster: the provider of canaries whose spec names none (detected from the cluster when absent)')
            [CompletionResult]::new('--metrics-server', '--metrics-server', [CompletionResultType]::ParameterName, 'With --cluster: the Prometheus of the built-in metrics, as for `canary run`')
            [CompletionResult]::new('--route-via', '--route-via', [CompletionResultType]::ParameterName, 'How in-cluster URLs (webhooks, metrics servers) are reached: through the API server''s service proxy, or directly by cluster DNS (default: direct with the in-cluster config, inside a Pod; else proxy)')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('--cluster', '--cluster', [CompletionResultType]::ParameterName, 'Also check each canary against the live cluster, reading only: the target and its autoscaler exist, its pods serve the Service''s port, MetricTemplates and AlertProviders exist with their Secrets and keys, in-cluster webhooks'' Services exist with their ports, and every permission `canary run` needs is granted. The same checks `canary run` makes before it changes anything')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'canary;plan' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Which Canary of the file, when it holds several')
            [CompletionResult]::new('--max-input-size', '--max-input-size', [CompletionResultType]::ParameterName, 'Refuse a spec file larger than this many bytes (suffixes KiB, MiB, GiB, or K, M, G, k)')
            [CompletionResult]::new('--mesh-provider', '--mesh-provider', [CompletionResultType]::ParameterName, 'Service mesh or ingress provider for canaries whose spec names none (Flagger''s `-mesh-provider` install flag), e.g. linkerd, istio, nginx')
            [CompletionResult]::new('--metrics-server', '--metrics-server', [CompletionResultType]::ParameterName, 'Prometheus address used by the built-in metrics, when the spec sets no `metricsServer` (default: the provider''s own)')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('-R', '-R ', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('--recursive', '--recursive', [CompletionResultType]::ParameterName, 'Read the directories given, and their subdirectories, as `kubectl apply -R` does (a directory alone gives its own .yaml, .yml and .json files)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'canary;demo' {
            [CompletionResult]::new('--kubeconfig', '--kubeconfig', [CompletionResultType]::ParameterName, 'Where to write the kubeconfig (with --serve)')
            [CompletionResult]::new('--scenario', '--scenario', [CompletionResultType]::ParameterName, 'A scenario file to run instead of the built-in one (with --serve)')
            [CompletionResult]::new('--serve', '--serve', [CompletionResultType]::ParameterName, 'Keep the simulated cluster running until Ctrl-C and write a kubeconfig for other terminals, instead of playing the story')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'canary;completions' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
