ft-generate --help
