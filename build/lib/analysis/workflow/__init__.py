"""The run: the fit plan, one typed request per step (shared by the CLI and the API) and
`segment run`."""
