complete --keep-order --exclusive --command canary --arguments "(COMPLETE=fish canary -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
