"""Log records from journald and the Nydus log files: parsing, following, buffering."""
