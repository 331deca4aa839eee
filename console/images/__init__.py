"""Image references, registries, inspection and conversion with nydusify."""
