"""A shared remote cache (fsspec: a shared folder, S3) behind the local store: `layer.RemoteStore`
over `files.RemoteFiles`, chosen by `settings.RemoteSettings`. Nothing is imported here: the CLI
and the planner load `settings` on every run, and a run the local cache serves loads no more."""
