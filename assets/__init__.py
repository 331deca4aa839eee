"""Data shipped with nydus-console: stylesheets, check definitions, scripts."""
