"""The `pipe` command line, the GitHub Action entrypoint and the HTTP client used in remote mode."""
